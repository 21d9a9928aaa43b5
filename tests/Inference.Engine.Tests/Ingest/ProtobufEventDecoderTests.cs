using Google.Protobuf;
using Inference.Engine.Ingest;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>An <c>EventBatch</c> bigger than the micro-batch goes in over several calls, and is all or nothing.</summary>
public sealed class ProtobufEventDecoderTests
{
    private static Event Good(int i) => new() { Entity = $"e-{i}", Ts = 1_767_225_600_000 + i, Values = { ["amount"] = i } };

    [Fact]
    public void A_batch_that_does_not_fit_goes_on_in_the_next_micro_batch()
    {
        var decoder = new ProtobufEventDecoder(["amount"]);
        using var batch = new MicroBatch(["amount"], 4);
        batch.Commit();
        var message = new EventBatch { Events = { Enumerable.Range(0, 6).Select(Good) } }.ToByteArray();
        int resume = 0;
        Assert.Equal(DecodeError.None, decoder.DecodeBatch(message, batch, ref resume));
        Assert.Equal(3, resume);
        Assert.Equal(4, batch.Count);
        Assert.Equal([0f, 1f, 2f], batch.Values[1..4].ToArray());
        batch.Clear();
        Assert.Equal(DecodeError.None, decoder.DecodeBatch(message, batch, ref resume));
        Assert.Equal(0, resume);
        Assert.Equal([3f, 4f, 5f], batch.Values[..3].ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void A_bad_event_before_or_after_the_batch_fills_leaves_the_batch_as_it_was(int bad)
    {
        var decoder = new ProtobufEventDecoder(["amount"]);
        using var batch = new MicroBatch(["amount"], 4);
        batch.Commit();
        var events = Enumerable.Range(0, 6).Select(Good).ToList();
        events[bad] = new Event { Entity = "x", Ts = 5 };
        int resume = 0;
        Assert.Equal(DecodeError.MissingField, decoder.DecodeBatch(new EventBatch { Events = { events } }.ToByteArray(), batch, ref resume));
        Assert.Equal(0, resume);
        Assert.Equal(1, batch.Count);
    }
}
