using Inference.Proto.V1;

namespace Inference.Engine.Sync;

/// <summary>The pool's membership as the parameter server keeps it: what workers announce and what they read back (the pool implements it).</summary>
internal interface IPoolRegistry
{
    /// <summary>Records a worker's endpoint and owned partitions; answers with the live members.</summary>
    PoolMembers Announce(AnnounceRequest request);

    /// <summary>The live members.</summary>
    PoolMembers Members();
}
