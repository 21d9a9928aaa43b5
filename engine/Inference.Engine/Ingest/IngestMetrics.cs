using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Ingest;

/// <summary>The ingest stage's instruments (meter "Inference").</summary>
internal sealed class IngestMetrics
{
    private readonly TotalCounter _malformed;
    private readonly TotalCounter _dataLoss;
    private readonly TotalCounter _grpcAccepted;
    private readonly TotalCounter _replayed;
    private readonly TotalCounter _grpcRejected;
    private readonly TotalCounter _misrouted;
    private long _lag;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, (long Lag, long Round)> _partitionLag = new();
    private long _lagRound;

    public IngestMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(EngineMeter.Name);
        _malformed = new(meter, "inference.ingest.malformed", "{event}", "Events set aside as malformed, by reason.");
        _dataLoss = new(meter, "inference.ingest.data_loss", "{reset}", "Offset-out-of-range resets: data the broker no longer had.");
        _replayed = new(meter, "inference.ingest.replayed", "{event}", "Events read again after a rebalance or an offset rewind that the state already held: skipped, not counted twice.");
        _grpcAccepted = new(meter, "inference.ingest.grpc.accepted", "{event}", "Events taken over gRPC and written durably to the events topic.");
        _misrouted = new(meter, "inference.ingest.misrouted", "{event}", "Events from another partition than Kafka's default partitioner gives their entity (tag: partition): a producer partitioning otherwise.");
        _grpcRejected = new(meter, "inference.ingest.grpc.rejected", "{event}", "Events refused over gRPC (the ack names each with its reason).");
        meter.CreateObservableGauge("inference.ingest.lag", () => Volatile.Read(ref _lag), "{event}", "Events behind the end of the assigned partitions.");
        meter.CreateObservableGauge("inference.ingest.partition.lag", PartitionLags, "{event}", "Events behind the end of each assigned partition (tag: partition).");
    }

    public long MalformedEvents => _malformed.Total;

    public long DataLossResets => _dataLoss.Total;

    public long ConsumerLag => Volatile.Read(ref _lag);

    internal void Malformed(string reason) => _malformed.Add(1, "reason", reason);

    internal void DataLoss() => _dataLoss.Add(1);

    public long MisroutedEvents => _misrouted.Total;

    internal void Misrouted(string partition, int events) => _misrouted.Add(events, "partition", partition);

    public long GrpcAccepted => _grpcAccepted.Total;

    public long ReplayedEvents => _replayed.Total;

    internal void Replayed() => _replayed.Add(1);

    internal void IngestedOverGrpc(int accepted, int rejected)
    {
        _grpcAccepted.Add(accepted);
        if (rejected > 0)
        {
            _grpcRejected.Add(rejected);
        }
    }

    /// <summary>The total lag, closing a round of <see cref="PartitionLag"/> reports.</summary>
    internal void Lag(long lag)
    {
        Volatile.Write(ref _lag, lag);
        Interlocked.Increment(ref _lagRound);
    }

    /// <summary>One partition's lag in the round the next <see cref="Lag"/> closes.</summary>
    internal void PartitionLag(int partition, long lag) => _partitionLag[partition] = (lag, Interlocked.Read(ref _lagRound) + 1);

    /// <summary>The partitions of the last complete round (ones no longer assigned drop out).</summary>
    private IEnumerable<Measurement<long>> PartitionLags()
    {
        long round = Interlocked.Read(ref _lagRound);
        foreach (var (partition, (lag, of)) in _partitionLag)
        {
            if (of == round)
            {
                yield return new Measurement<long>(lag, new KeyValuePair<string, object?>("partition", partition));
            }
        }
    }
}
