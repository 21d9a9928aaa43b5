using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;

namespace Inference.Engine.Training;

/// <summary>
/// The labels' sink: decodes JSON labels in place into the trainer's mini-batch arrays and hands a
/// closed mini-batch to the trainer, which learns from it before returning. Mini-batches close when
/// full or due (never early: a mini-batch's size is part of how the model learns).
/// </summary>
internal sealed class LabelSink(int batchSize, int requestWidth, Action<LabelSink> train, LabelIdFields? idFields = null) : IBatchSink
{
    private readonly WatermarkBuilder _done = new();
    private readonly int _idInputs = idFields?.Count ?? 0;

    public ulong[] Entities { get; } = new ulong[batchSize];

    public long[] Times { get; } = new long[batchSize];

    public float[] Labels { get; } = new float[batchSize];

    /// <summary>Per label, the hash of the request id it names (0: none).</summary>
    public ulong[] Requests { get; } = new ulong[batchSize];

    /// <summary>Request features, <c>requestWidth</c> per label.</summary>
    public float[] RequestFeatures { get; } = new float[batchSize * requestWidth];

    /// <summary>A model over ids: per label, one hashed id per id input.</summary>
    public ulong[] Ids { get; } = new ulong[batchSize * (idFields?.Count ?? 0)];

    public int Count { get; private set; }

    /// <summary>Per partition, the last label offset learned from or set aside (what a checkpoint of the trainer holds).</summary>
    public IReadOnlyList<PartitionOffset> Done => _done.Snapshot().Partitions;

    /// <summary>Starts from the label offsets a restored checkpoint holds.</summary>
    public void Restore(IReadOnlyList<PartitionOffset> done) => _done.Restore(new FeatureWatermark(done, 0, 0));

    public bool IsFull => Count == batchSize;

    public int Room => batchSize - Count;

    public bool CloseWhenIdle => false;

    public bool Busy => false;

    public unsafe DecodeError Accept(EventFormat format, byte* payload, int length, ref int resume)
    {
        if (format != EventFormat.Json)
        {
            return DecodeError.UnknownContentType;
        }
        if (!LabelDecoder.TryDecode(new ReadOnlySpan<byte>(payload, length), RequestFeatures.AsSpan(Count * requestWidth, requestWidth), out var label,
            idFields, Ids.AsSpan(Count * _idInputs, _idInputs)))
        {
            return DecodeError.BadLabel;
        }
        Entities[Count] = label.Entity;
        Times[Count] = label.TimeMs;
        Labels[Count] = label.Value;
        Requests[Count] = label.Request;
        Count++;
        return DecodeError.None;
    }

    /// <summary>Keeps only the labels <paramref name="keep"/> marks, in their order (the others are set aside before learning).</summary>
    public void KeepOnly(ReadOnlySpan<bool> keep)
    {
        int kept = 0;
        for (int r = 0; r < Count; r++)
        {
            if (!keep[r])
            {
                continue;
            }
            if (kept != r)
            {
                Entities[kept] = Entities[r];
                Times[kept] = Times[r];
                Labels[kept] = Labels[r];
                Requests[kept] = Requests[r];
                RequestFeatures.AsSpan(r * requestWidth, requestWidth).CopyTo(RequestFeatures.AsSpan(kept * requestWidth));
                Ids.AsSpan(r * _idInputs, _idInputs).CopyTo(Ids.AsSpan(kept * _idInputs));
            }
            kept++;
        }
        Count = kept;
    }

    public void Submit(ReadOnlySpan<PartitionOffset> offsets)
    {
        if (Count > 0)
        {
            train(this);
        }
        Count = 0;
        _done.Advance(offsets, 0);
    }

    public void Drain()
    {
    }
}
