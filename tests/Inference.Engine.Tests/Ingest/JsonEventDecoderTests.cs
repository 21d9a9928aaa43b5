using System.Text;
using Inference.Engine.Ingest;
using Inference.Kernels.Features;

namespace Inference.Engine.Tests;

public sealed class JsonEventDecoderTests
{
    private static readonly string[] Fields = ["amount", "items"];

    [Fact]
    public void Decodes_fields_in_any_order_and_ignores_unknown_properties()
    {
        using var batch = new MicroBatch(Fields, capacity: 4);
        var decoder = new JsonEventDecoder(Fields);
        Assert.Equal(DecodeError.None, decoder.TryDecode("{\"items\":3,\"extra\":{\"a\":[1,{}]},\"ts\":17,\"amount\":-2.25,\"entity\":\"u\\u0031\"}"u8, batch));
        Assert.Equal(DecodeError.None, decoder.TryDecode("{\"entity\":42,\"ts\":18,\"amount\":1e3,\"items\":0}"u8, batch));
        Assert.Equal(2, batch.Count);
        Assert.Equal(EntityKey.Hash("u1"), batch.Entities[0]);
        Assert.Equal(EntityKey.Hash("42"), batch.Entities[1]);
        Assert.Equal([17L, 18L], batch.Times[..2].ToArray());
        Assert.Equal(-2.25f, batch.Values[0]);
        Assert.Equal(1000f, batch.Values[1]);
        Assert.Equal(3f, batch.Values[4]);
        Assert.Equal(0f, batch.Values[5]);

        var record = batch.ToRecordBatch();
        Assert.Equal(2, record.Length);
        Assert.Equal(["entity", "ts", "amount", "items"], record.Schema.FieldsList.Select(f => f.Name));
    }

    [Fact]
    public void Key_fields_are_hashed_like_entity_keys()
    {
        using var batch = new MicroBatch(["amount"], capacity: 4, keyFields: ["merchant"]);
        var decoder = new JsonEventDecoder(["amount"], ["merchant"]);
        Assert.Equal(DecodeError.None, decoder.TryDecode("{\"entity\":\"u\",\"ts\":1,\"amount\":2,\"merchant\":\"shop-9\"}"u8, batch));
        Assert.Equal(DecodeError.None, decoder.TryDecode("{\"entity\":\"u\",\"ts\":2,\"amount\":2,\"merchant\":77}"u8, batch));
        Assert.Equal(DecodeError.MissingField, decoder.TryDecode("{\"entity\":\"u\",\"ts\":3,\"amount\":2}"u8, batch));
        Assert.Equal(DecodeError.BadKeyField, decoder.TryDecode("{\"entity\":\"u\",\"ts\":3,\"amount\":2,\"merchant\":null}"u8, batch));
        Assert.Equal([EntityKey.Hash("shop-9"), EntityKey.Hash("77")], batch.Keys[..2].ToArray());
        Assert.Equal(["entity", "ts", "amount", "merchant"], batch.ToRecordBatch().Schema.FieldsList.Select(f => f.Name));
    }

    [Theory]
    [InlineData("{\"entity\":\"u\",\"ts\":1,\"amount\":1,\"items\":2} trailing", DecodeError.BadJson)]
    [InlineData("{\"entity\":\"u\",\"ts\":-1,\"amount\":1,\"items\":2}", DecodeError.BadTime)]
    [InlineData("{\"entity\":\"u\",\"ts\":1.5,\"amount\":1,\"items\":2}", DecodeError.BadTime)]
    [InlineData("{\"entity\":null,\"ts\":1,\"amount\":1,\"items\":2}", DecodeError.MissingEntity)]
    [InlineData("{\"entity\":\"u\",\"ts\":1,\"amount\":true,\"items\":2}", DecodeError.NonNumericField)]
    [InlineData("{\"entity\":\"u\",\"ts\":1,\"amount\":1e39,\"items\":2}", DecodeError.NonNumericField)]
    [InlineData("{\"entity\":\"u\",\"ts\":1,\"amount\":1,\"amount\":2}", DecodeError.MissingField)]
    public void Refuses_malformed_events_and_leaves_the_batch_unchanged(string json, DecodeError expected)
    {
        using var batch = new MicroBatch(Fields, capacity: 2);
        var decoder = new JsonEventDecoder(Fields);
        Assert.Equal(expected, decoder.TryDecode(Encoding.UTF8.GetBytes(json), batch));
        Assert.Equal(0, batch.Count);
    }
}
