using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>What a randomised run of an embedding table found, and how much of the table it exercised.</summary>
public sealed record EmbeddingCheckReport(List<string> Mismatches, int Batches, int Growths, long Forgotten, int Restores, int MaxRows)
{
    public bool Passed => Mismatches.Count == 0;
}

/// <summary>
/// An embedding table against <see cref="EmbeddingOracle"/> on one accelerator: skewed ids (a few of them
/// in most calls, many seen once or twice), calls of up to 48 ids with repeats, a minimum count of 2, a
/// table that starts at 16 rows and may hold 128 (so it grows, then forgets its idlest ids), a TTL, reads
/// of known and unknown ids, optimizer steps with repeated rows, and snapshots restored into a fresh
/// table midway. One body for the kernel tests and the GPU check.
/// </summary>
public static class EmbeddingSelfCheck
{
    private const int Pool = 400;

    public static EmbeddingTableOptions Options(SparseOptimizerKind kind) => new()
    {
        Dimension = 4,
        InitialCapacity = 16,
        MaxCapacity = 128,
        MaxBatchIds = 48,
        MinCount = 2,
        InitScale = 0.05f,
        EvictionFraction = 0.1,
        PendingIdsPerRow = 1,
        Optimizer = kind == SparseOptimizerKind.Adagrad
            ? new SparseOptimizer { Kind = kind, LearningRate = 0.1f, InitialAccumulator = 0.1f }
            : new SparseOptimizer { Kind = kind, LearningRate = 0.1f, InitialAccumulator = 0.1f, Beta = 1f, L1 = 0.002f, L2 = 0.01f },
    };

    public static EmbeddingCheckReport Run(DeviceContext device, int seed, SparseOptimizerKind kind, int batches = 200)
    {
        var options = Options(kind);
        var table = new EmbeddingTable(device, options);
        var oracle = new EmbeddingOracle(options);
        var random = new Random(seed);
        var pool = Enumerable.Range(0, Pool).Select(k => EntityKey.Hash($"id-{k}")).ToArray();
        var mismatches = new List<string>();
        long now = 1_767_225_600_000;
        int restores = 0, maxRows = 0, growths = 0;
        long forgotten = 0;
        int d = options.Dimension;
        try
        {
            for (int b = 0; b < batches && mismatches.Count < 20; b++)
            {
                now += random.Next(0, 50);
                int n = random.Next(1, options.MaxBatchIds + 1);
                var ids = new ulong[n];
                for (int i = 0; i < n; i++)
                {
                    ids[i] = pool[(int)(Pool * Math.Pow(random.NextDouble(), 3))];
                }
                var rows = new int[n];
                table.Touch(ids, now, rows);
                oracle.Touch(ids, now);
                Compare($"seed {seed}, batch {b}, learning", table, oracle, ids, rows, mismatches);
                if (table.Rows != oracle.Rows || table.Ids != oracle.Ids)
                {
                    mismatches.Add($"seed {seed}, batch {b}: the table holds {table.Ids} ids and {table.Rows} rows, the oracle {oracle.Ids} and {oracle.Rows}");
                }
                maxRows = Math.Max(maxRows, table.Rows);

                var gradients = new float[n * d];
                for (int i = 0; i < gradients.Length; i++)
                {
                    gradients[i] = (float)(2 * random.NextDouble() - 1);
                }
                table.Step(rows, gradients);
                oracle.Step(ids, gradients);

                // Reads: known ids and ones the table never saw, without counting them.
                var reads = Enumerable.Range(0, 8).Select(i => i % 2 == 0 ? pool[random.Next(Pool)] : EntityKey.Hash($"never-{b}-{i}")).ToArray();
                var readRows = new int[reads.Length];
                table.Lookup(reads, readRows);
                Compare($"seed {seed}, batch {b}, reading", table, oracle, reads, readRows, mismatches);

                if (b % 25 == 24)
                {
                    int byTable = table.ForgetOlderThan(now - 400);
                    int byOracle = oracle.ForgetOlderThan(now - 400);
                    if (byTable != byOracle)
                    {
                        mismatches.Add($"seed {seed}, batch {b}: the TTL forgot {byTable} ids, the oracle {byOracle}");
                    }
                }
                if (b % 40 == 39)
                {
                    var snapshot = table.Snapshot();
                    if (oracle.Differs(snapshot, 1e-6f) is { } difference)
                    {
                        mismatches.Add($"seed {seed}, batch {b}, snapshot: {difference}");
                    }
                    forgotten += table.Forgotten;
                    growths += table.Growths;
                    var restored = new EmbeddingTable(device, options);
                    restored.Restore(snapshot);
                    table.Dispose();
                    table = restored;
                    oracle.Capacity = table.Capacity;
                    restores++;
                }
            }
            forgotten += table.Forgotten;
            growths += table.Growths;
            return new EmbeddingCheckReport(mismatches, batches, growths, forgotten, restores, maxRows);
        }
        finally
        {
            table.Dispose();
        }
    }

    private static void Compare(string where, EmbeddingTable table, EmbeddingOracle oracle, ulong[] ids, int[] rows, List<string> mismatches)
    {
        int d = table.Dimension;
        var values = new float[ids.Length * d];
        table.Gather(rows, values);
        for (int i = 0; i < ids.Length && mismatches.Count < 20; i++)
        {
            var expected = oracle.Read(ids[i]);
            for (int c = 0; c < d; c++)
            {
                float actual = values[i * d + c];
                if (Math.Abs(actual - expected[c]) > 1e-6f * Math.Max(1, Math.Abs(expected[c])))
                {
                    mismatches.Add($"{where}: id {ids[i]:x} (row {rows[i]}), coordinate {c}: {actual}, the oracle {expected[c]}; the oracle's state {oracle.State(ids[i])}");
                    break;
                }
            }
        }
    }
}
