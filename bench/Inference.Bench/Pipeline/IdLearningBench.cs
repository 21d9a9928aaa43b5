using System.Diagnostics;
using System.Globalization;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Models;
using Inference.Models.Training;

namespace Inference.Bench.Pipeline;

/// <summary>
/// The learning path of a model over ids, in one process on the CPU backend: per mini-batch, each id input's
/// table finds and dates its ids and gathers their rows, the learner steps the dense part and hands back the
/// embeddings' gradient, and each table takes its sparse step. Against the baseline of the same labels
/// learned by the logistic model over the aggregates alone, timed in alternating turns. What it leaves out
/// (the label consumer, the point-in-time feature gather) is the same for both.
/// </summary>
internal static class IdLearningBench
{
    private const int Aggregates = 8;
    private const int Users = 100_000;
    private const int Items = 10_000;

    public static int Run(int dimension, int batch, double seconds)
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        var tableOptions = new EmbeddingTableOptions
        {
            Dimension = dimension,
            InitialCapacity = 1 << 16,
            MaxCapacity = 1 << 18,
            MaxBatchIds = batch,
            Optimizer = new SparseOptimizer { Kind = SparseOptimizerKind.Adagrad, LearningRate = 0.05f },
        };
        using var users = new EmbeddingTable(device, tableOptions);
        using var items = new EmbeddingTable(device, tableOptions);
        using var withIds = new OnlineLearner(new ModelSpec(ModelKind.EmbeddingMlp, Aggregates, Hidden: 32, IdDimensions: [dimension, dimension]), 0.01, DenseOptimizerKind.Adam);
        using var baseline = new OnlineLearner(new ModelSpec(ModelKind.Logistic, Aggregates), 0.1);
        var random = new Random(7);
        var x = new float[batch * Aggregates];
        var y = new float[batch];
        var userIds = new ulong[batch];
        var itemIds = new ulong[batch];
        var userRows = new int[batch];
        var itemRows = new int[batch];
        var userValues = new float[batch * dimension];
        var itemValues = new float[batch * dimension];
        var embeddings = new float[batch * 2 * dimension];
        var gradients = new float[batch * 2 * dimension];
        var userGradients = new float[batch * dimension];
        var itemGradients = new float[batch * dimension];
        long now = 0;

        void Fill()
        {
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)random.NextDouble();
            }
            for (int r = 0; r < batch; r++)
            {
                userIds[r] = (ulong)random.Next(Users) + 1;
                itemIds[r] = (ulong)random.Next(Items) + 1_000_000;
                y[r] = random.Next(2);
            }
        }

        void LearnWithIds()
        {
            now++;
            users.Touch(userIds, now, userRows);
            items.Touch(itemIds, now, itemRows);
            users.Gather(userRows, userValues);
            items.Gather(itemRows, itemValues);
            for (int r = 0; r < batch; r++)
            {
                userValues.AsSpan(r * dimension, dimension).CopyTo(embeddings.AsSpan(r * 2 * dimension));
                itemValues.AsSpan(r * dimension, dimension).CopyTo(embeddings.AsSpan(r * 2 * dimension + dimension));
            }
            withIds.Step(x, embeddings, y, batch, gradients);
            for (int r = 0; r < batch; r++)
            {
                gradients.AsSpan(r * 2 * dimension, dimension).CopyTo(userGradients.AsSpan(r * dimension));
                gradients.AsSpan(r * 2 * dimension + dimension, dimension).CopyTo(itemGradients.AsSpan(r * dimension));
            }
            users.Step(userRows, userGradients);
            items.Step(itemRows, itemGradients);
        }

        void LearnBaseline() => baseline.Step(x, y, batch);

        // Warm up both (JIT, the tables' first rows), then alternate turns of a fifth of a second each.
        for (int i = 0; i < 50; i++)
        {
            Fill();
            LearnWithIds();
            LearnBaseline();
        }
        double idTime = 0, baseTime = 0;
        long idLabels = 0, baseLabels = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            foreach (bool ids in new[] { true, false })
            {
                var turn = Stopwatch.StartNew();
                while (turn.Elapsed.TotalSeconds < 0.2)
                {
                    Fill();
                    long start = Stopwatch.GetTimestamp();
                    if (ids)
                    {
                        LearnWithIds();
                    }
                    else
                    {
                        LearnBaseline();
                    }
                    double spent = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    if (ids)
                    {
                        idTime += spent;
                        idLabels += batch;
                    }
                    else
                    {
                        baseTime += spent;
                        baseLabels += batch;
                    }
                }
            }
        }
        double idRate = idLabels / idTime, baseRate = baseLabels / baseTime;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| EmbeddingMlp (Adam) + 2 id tables (Adagrad), dimension {dimension}, batch {batch} | {idRate:N0} labels/s | {idRate / baseRate:F2}× the baseline |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| Logistic over {Aggregates} aggregates (SGD), batch {batch}, same turns | {baseRate:N0} labels/s | baseline |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| rows held | users {users.Rows:N0}, items {items.Rows:N0} | |"));
        return 0;
    }
}
