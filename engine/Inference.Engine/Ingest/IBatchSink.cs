using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>
/// Where a <see cref="KafkaBatchSource{TSink}"/> decodes messages to and hands closed batches: the
/// feature store's micro-batches for events, the trainer's mini-batches for labels.
/// </summary>
internal interface IBatchSink
{
    bool IsFull { get; }

    /// <summary>Rows the open batch still has room for.</summary>
    int Room { get; }

    /// <summary>Close a batch as soon as nothing more is buffered and <see cref="Busy"/> is false (freshness first), not only when full or due.</summary>
    bool CloseWhenIdle { get; }

    /// <summary>True while a submitted batch is still being applied.</summary>
    bool Busy { get; }

    /// <summary>
    /// Decodes one message in place into the open batch. A message of many rows that does not fit
    /// returns with <paramref name="resume"/> at its next row (the source submits, then calls again);
    /// on error the batch is unchanged.
    /// </summary>
    unsafe DecodeError Accept(EventFormat format, byte* payload, int length, ref int resume);

    /// <summary>Where the next message to <see cref="Accept"/> comes from (the timestamp only when the source tracks positions, for stream scoring).</summary>
    void At(int partition, long offset, long timestampMs)
    {
    }

    /// <summary>Hands the open batch on, with the offsets it covers; returns once the batch before it is done.</summary>
    void Submit(ReadOnlySpan<PartitionOffset> offsets);

    /// <summary>Waits until every submitted batch is done.</summary>
    void Drain();

    /// <summary>
    /// After <see cref="Drain"/>, before partitions leave (a rebalance): waits until what the sink passed
    /// on from them is settled downstream (stream scoring: their scores' transactions known committed),
    /// so that the next owner goes on from there.
    /// </summary>
    void Settle()
    {
    }
}
