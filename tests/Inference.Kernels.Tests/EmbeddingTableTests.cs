using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;
using Inference.Testing;
using Xunit.Abstractions;

namespace Inference.Kernels.Tests;

/// <summary>An embedding table admits, learns, forgets and checkpoints rows exactly as a plain dictionary would.</summary>
public sealed class EmbeddingTableTests(ITestOutputHelper output)
{
    public static TheoryData<AcceleratorKind, SparseOptimizerKind> AcceleratorsAndOptimizers()
    {
        var data = new TheoryData<AcceleratorKind, SparseOptimizerKind>();
        foreach (AcceleratorKind kind in Accelerators.Available())
        {
            data.Add(kind, SparseOptimizerKind.Adagrad);
            data.Add(kind, SparseOptimizerKind.Ftrl);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(AcceleratorsAndOptimizers))]
    public void Rows_are_admitted_learned_forgotten_and_restored_as_the_dictionary_says(AcceleratorKind kind, SparseOptimizerKind optimizer)
    {
        using var device = DeviceContext.Create(kind);
        var report = EmbeddingSelfCheck.Run(device, seed: 41, optimizer);
        output.WriteLine($"{report.Batches} calls, {report.Growths} growths, {report.Forgotten} forgotten, {report.Restores} restores, up to {report.MaxRows} rows");
        Assert.True(report.Passed, string.Join("\n", report.Mismatches));
        // The run reached what it is there to check.
        Assert.True(report.Growths > 0 && report.Forgotten > 0 && report.Restores > 0 && report.MaxRows >= 100,
            $"growths {report.Growths}, forgotten {report.Forgotten}, restores {report.Restores}, rows {report.MaxRows}");
    }

    [Theory]
    [MemberData(nameof(AcceleratorsAndOptimizers))]
    public void Steps_on_a_few_rows_equal_the_plain_reference(AcceleratorKind kind, SparseOptimizerKind optimizer)
    {
        var options = EmbeddingSelfCheck.Options(optimizer) with { MinCount = 1 };
        using var device = DeviceContext.Create(kind);
        using var table = new EmbeddingTable(device, options);
        var oracle = new EmbeddingOracle(options);
        ulong[] ids = [EntityKey.Hash("user-1"), EntityKey.Hash("user-2"), EntityKey.Hash("user-1"), EntityKey.Hash("item-9")];
        var rows = new int[ids.Length];
        table.Touch(ids, 1_000, rows);
        oracle.Touch(ids, 1_000);
        Assert.Equal(rows[0], rows[2]);
        Assert.Equal(3, rows.Distinct().Count());
        var random = new Random(5);
        var values = new float[ids.Length * options.Dimension];
        for (int step = 0; step < 10; step++)
        {
            var gradients = Enumerable.Range(0, values.Length).Select(_ => (float)(2 * random.NextDouble() - 1)).ToArray();
            table.Step(rows, gradients);
            oracle.Step(ids, gradients);
            table.Gather(rows, values);
            for (int i = 0; i < ids.Length; i++)
            {
                var expected = oracle.Read(ids[i]);
                for (int c = 0; c < options.Dimension; c++)
                {
                    Assert.True(Math.Abs(values[i * options.Dimension + c] - expected[c]) <= 1e-6f, $"step {step}, id {i}, coordinate {c}: {values[i * options.Dimension + c]}, the reference {expected[c]}");
                }
            }
        }
    }

    [Fact]
    public void Ids_below_their_minimum_count_read_the_default_row_and_a_row_starts_from_its_id()
    {
        var options = EmbeddingSelfCheck.Options(SparseOptimizerKind.Adagrad) with { MinCount = 3 };
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new EmbeddingTable(device, options);
        ulong id = EntityKey.Hash("merchant-4711");
        var row = new int[1];
        table.Touch([id], 10, row);
        table.Touch([id], 20, row);
        Assert.Equal(0, row[0]);
        Assert.Equal(0, table.Rows);
        table.Touch([id], 30, row);
        Assert.NotEqual(0, row[0]);
        var values = new float[options.Dimension];
        table.Gather(row, values);
        ulong stored = FeatureTable.TableKey(id);
        Assert.Equal(Enumerable.Range(0, options.Dimension).Select(c => EmbeddingTable.InitialValue(stored, c, options.InitScale)), values);
        Assert.All(values, v => Assert.InRange(v, -options.InitScale, options.InitScale));
    }

    [Theory]
    [MemberData(nameof(Accelerators_), MemberType = typeof(EmbeddingTableTests))]
    public void Rows_written_from_outside_read_back_as_written_and_keep_their_optimizer_state(AcceleratorKind kind)
    {
        var options = EmbeddingSelfCheck.Options(SparseOptimizerKind.Adagrad) with { MinCount = 2 };
        using var device = DeviceContext.Create(kind);
        using var table = new EmbeddingTable(device, options);
        int d = options.Dimension;
        ulong known = EntityKey.Hash("item-1"), fresh = EntityKey.Hash("item-2");
        var rows = new int[2];
        table.Touch([known, known], 10, rows);
        table.Step(rows, new float[2 * d].Select((_, i) => 0.1f * (i % 3)).ToArray());
        var stateBefore = table.Snapshot();

        // The known id, one never seen (it gets a row although below MinCount), and the default row (key 0).
        var values = Enumerable.Range(0, 3 * d).Select(i => i * 0.01f - 0.2f).ToArray();
        table.Write([known, fresh, 0], values, 20);
        var read = new int[2];
        table.Lookup([known, fresh], read);
        Assert.All(read, row => Assert.NotEqual(0, row));
        var back = new float[3 * d];
        table.Gather([read[0], read[1], 0], back);
        Assert.Equal(values, back);
        // The known id's optimizer state is as its steps left it.
        static float[] StateOf(EmbeddingSnapshot snapshot, ulong id)
        {
            int row = snapshot.Rows[Array.IndexOf(snapshot.Keys, FeatureTable.TableKey(id))];
            int width = snapshot.State.Length / (snapshot.Values.Length / snapshot.Dimension);
            return snapshot.State.AsSpan(row * width, width).ToArray();
        }
        Assert.Equal(StateOf(stateBefore, known), StateOf(table.Snapshot(), known));

        using var ftrl = new EmbeddingTable(device, EmbeddingSelfCheck.Options(SparseOptimizerKind.Ftrl));
        Assert.Throws<InvalidOperationException>(() => ftrl.Write([known], new float[d], 30));
    }

    public static TheoryData<AcceleratorKind> Accelerators_()
    {
        var data = new TheoryData<AcceleratorKind>();
        foreach (AcceleratorKind kind in Accelerators.Available())
        {
            data.Add(kind);
        }
        return data;
    }
}
