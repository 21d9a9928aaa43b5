using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Inference.Engine.Ingest;

namespace Inference.Bench.Micro;

/// <summary>Decoding one event into a micro-batch row, next to a bare Utf8JsonReader pass over the same bytes.</summary>
[MemoryDiagnoser]
public class DecoderBenchmarks
{
    private readonly byte[] _event = Encoding.UTF8.GetBytes("{\"entity\":\"user-000042\",\"ts\":1767225600123,\"amount\":52.17}");
    private readonly JsonEventDecoder _decoder = new(["amount"]);
    private readonly MicroBatch _batch = new(["amount"], 1);

    [Benchmark(Baseline = true)]
    public int ReaderOnly()
    {
        var reader = new Utf8JsonReader(_event);
        int tokens = 0;
        while (reader.Read())
        {
            tokens++;
        }
        return tokens;
    }

    [Benchmark]
    public DecodeError Decode()
    {
        _batch.Clear();
        return _decoder.TryDecode(_event, _batch);
    }
}
