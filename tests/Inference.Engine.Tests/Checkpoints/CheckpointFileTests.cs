using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>Checkpoint files read back as written: an empty feature table, and a model over ids' embedding tables.</summary>
public sealed class CheckpointFileTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-files-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void A_checkpoint_of_a_table_without_entities_reads_back()
    {
        // Labels can be learned before any event arrives (a model over ids needs no aggregate): the
        // checkpoint of that moment holds no entity and must still restore.
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 1_024, MaxBatchEvents = 64 });
        var entry = CheckpointFiles.Write(_directory, new Checkpoint(table.Snapshot(), FeatureWatermark.Empty, null, "model"), TimeProvider.System);
        var read = CheckpointFiles.Read(entry.Path);
        Assert.Equal(0, read.Table.Entities);
        Assert.Equal(table.Capacity, read.Table.Capacity);
    }

    [Fact]
    public void An_embedding_table_file_restores_the_same_rows_and_a_damaged_one_is_refused_by_name()
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        var options = new EmbeddingTableOptions { Dimension = 3, InitialCapacity = 16, MaxCapacity = 256, MaxBatchIds = 64, MinCount = 2, InitScale = 0.1f };
        using var table = new EmbeddingTable(device, options);
        var random = new Random(4);
        var ids = new ulong[64];
        var rows = new int[64];
        for (int step = 0; step < 10; step++)
        {
            for (int i = 0; i < ids.Length; i++)
            {
                ids[i] = EntityKey.Hash($"id-{random.Next(40)}");
            }
            table.Touch(ids, 1_000 + step, rows);
            table.Step(rows, [.. Enumerable.Range(0, rows.Length * 3).Select(_ => (float)(random.NextDouble() - 0.5))]);
        }
        var snapshot = table.Snapshot();
        using var stream = new MemoryStream();
        EmbeddingCodec.Write(stream, snapshot);
        stream.Position = 0;
        var read = EmbeddingCodec.Read(stream, "embeddings-00.bin");
        Assert.Equal(snapshot.Keys, read.Keys);
        Assert.Equal(snapshot.Counts, read.Counts);
        Assert.Equal(snapshot.LastMs, read.LastMs);
        Assert.Equal(snapshot.Rows, read.Rows);
        Assert.Equal(snapshot.Values, read.Values);
        Assert.Equal(snapshot.State, read.State);

        using var restored = new EmbeddingTable(device, options);
        restored.Restore(read);
        var known = snapshot.Keys.ToArray();
        var (expected, actual) = (new float[known.Length * 3], new float[known.Length * 3]);
        var (rowsBefore, rowsAfter) = (new int[known.Length], new int[known.Length]);
        table.Lookup(known, rowsBefore);
        table.Gather(rowsBefore, expected);
        restored.Lookup(known, rowsAfter);
        restored.Gather(rowsAfter, actual);
        Assert.Equal(expected, actual);

        var bytes = stream.ToArray();
        var error = Assert.Throws<InvalidDataException>(() => EmbeddingCodec.Read(new MemoryStream(bytes[..^5]), "embeddings-01.bin"));
        Assert.Contains("embeddings-01.bin", error.Message);
        bytes[0] = (byte)'X';
        Assert.Contains("embeddings-01.bin", Assert.Throws<InvalidDataException>(() => EmbeddingCodec.Read(new MemoryStream(bytes), "embeddings-01.bin")).Message);
    }
}
