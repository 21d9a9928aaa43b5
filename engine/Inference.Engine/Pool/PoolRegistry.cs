using Inference.Proto.V1;
using Inference.Engine.Sync;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Pool;

/// <summary>
/// The pool's membership, kept by the parameter server: each worker's Score endpoint and the events
/// partitions it owns, as it last announced them. Members silent for longer than
/// <see cref="SyncOptions.MemberTimeoutMs"/> are dropped (a worker that died no longer receives rows).
/// </summary>
internal sealed class PoolRegistry(IOptions<SyncOptions> options, TimeProvider time) : IPoolRegistry
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (AnnounceRequest Announced, long At)> _members = new(StringComparer.Ordinal);
    private readonly long _timeout = options.Value.MemberTimeoutMs * time.TimestampFrequency / 1000;

    public PoolMembers Announce(AnnounceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            _members[request.WorkerId] = (request.Clone(), time.GetTimestamp());
            return Live();
        }
    }

    public PoolMembers Members()
    {
        lock (_gate)
        {
            return Live();
        }
    }

    private PoolMembers Live()
    {
        long now = time.GetTimestamp();
        foreach (var gone in _members.Where(m => now - m.Value.At > _timeout).Select(m => m.Key).ToList())
        {
            _members.Remove(gone);
        }
        var members = new PoolMembers();
        // Newest announcement first: when two members briefly claim a partition during a rebalance, the newer claim wins.
        foreach (var (announced, at) in _members.Values.OrderByDescending(m => m.At))
        {
            var member = new PoolMember { WorkerId = announced.WorkerId, Endpoint = announced.Endpoint, AnnouncedMsAgo = (now - at) * 1000 / time.TimestampFrequency };
            member.Partitions.Add(announced.Partitions);
            members.Members.Add(member);
            members.MaxEventTimeMs = Math.Max(members.MaxEventTimeMs, announced.MaxEventTimeMs);
            if (members.PartitionCount == 0)
            {
                members.Topic = announced.Topic;
                members.PartitionCount = announced.PartitionCount;
            }
        }
        return members;
    }
}
