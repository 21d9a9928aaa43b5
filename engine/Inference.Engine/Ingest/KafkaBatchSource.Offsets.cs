using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>The batch source's bookkeeping of offsets: what its state holds per partition, and what one batch read.</summary>
internal sealed unsafe partial class KafkaBatchSource<TSink>
    where TSink : class, IBatchSink
{
    /// <summary>Per partition, the newest offset this process has taken into its state (applied or in a batch on its way).</summary>
    private sealed class HeldOffsets
    {
        private long[] _newest = [];

        /// <summary>The newest offset held from <paramref name="partition"/>; -1 for none.</summary>
        public long Newest(int partition) => partition < _newest.Length ? _newest[partition] : -1;

        /// <summary>From now on <paramref name="offset"/> is the newest held from <paramref name="partition"/> (-1: none).</summary>
        public void Reset(int partition, long offset)
        {
            Reach(ref _newest, partition);
            _newest[partition] = offset;
        }

        /// <summary>Takes <paramref name="offset"/> when it is newer than what is held; false for one held already.</summary>
        public bool Take(int partition, long offset)
        {
            Reach(ref _newest, partition);
            if (offset <= _newest[partition])
            {
                return false;
            }
            _newest[partition] = offset;
            return true;
        }
    }

    /// <summary>The last offset read per partition, for one batch; reused, no allocation in steady state.</summary>
    private sealed class OffsetSet
    {
        private long[] _last = [];
        private int[] _partitions = new int[16];
        private PartitionOffset[] _watermark = new PartitionOffset[16];

        public int Count { get; private set; }

        public ReadOnlySpan<int> Partitions => _partitions.AsSpan(0, Count);

        public long Last(int partition) => _last[partition];

        public void Set(int partition, long offset)
        {
            Reach(ref _last, partition);
            if (_last[partition] < 0)
            {
                if (Count == _partitions.Length)
                {
                    Array.Resize(ref _partitions, Count * 2);
                }
                _partitions[Count++] = partition;
            }
            _last[partition] = Math.Max(_last[partition], offset);
        }

        public ReadOnlySpan<PartitionOffset> ToWatermark(string topic)
        {
            if (_watermark.Length < Count)
            {
                _watermark = new PartitionOffset[Math.Max(Count, _watermark.Length * 2)];
            }
            for (int i = 0; i < Count; i++)
            {
                _watermark[i] = new PartitionOffset(topic, _partitions[i], _last[_partitions[i]]);
            }
            return _watermark.AsSpan(0, Count);
        }

        public void Clear()
        {
            foreach (int partition in Partitions)
            {
                _last[partition] = -1;
            }
            Count = 0;
        }
    }
}
