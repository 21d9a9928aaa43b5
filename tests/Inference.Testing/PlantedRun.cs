using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Grpc.Net.Client;
using Inference.Proto.V1;

namespace Inference.Testing;

/// <summary>What one engine made of the planted workload, next to the planted model on the same labels.</summary>
/// <param name="Progressive">Mean log loss over the measured labels, each scored by the engine (Score) before it was sent as a label.</param>
/// <param name="PlantedProgressive">The planted model's mean log loss over the same labels.</param>
/// <param name="HeldOut">Mean log loss of the held-out labels (scored after learning, never sent).</param>
/// <param name="PlantedHeldOut">The planted model's on the held-out labels.</param>
/// <param name="Measured">Labels the progressive loss is over.</param>
/// <param name="HeldOutCount">Held-out labels.</param>
/// <param name="LabelsPerSecond">Labels sent and learned per second, Score before each block included.</param>
public sealed record PlantedResult(double Progressive, double PlantedProgressive, double HeldOut, double PlantedHeldOut, int Measured, int HeldOutCount, double LabelsPerSecond)
{
    /// <summary>Labels per second learning a backlog (<see cref="PlantedRun.LearnBacklogAsync"/>), when measured.</summary>
    public double BacklogPerSecond { get; init; }
}

/// <summary>
/// Streams the planted workload through a running engine from outside, as a user would: events to Kafka,
/// then labels in blocks, each block first scored with <c>Score</c> (predict-then-learn: the progressive
/// log loss) then produced to the labels topic, the next block waiting until the engine has learned it;
/// then held-out labels scored only. Optionally writes what a batch reference (PyTorch) needs: every
/// user's aggregates as the engine holds them, and the labels with their split.
/// </summary>
public sealed class PlantedRun(PlantedIds workload, string bootstrapServers, GrpcChannel channel, Func<long> eventsApplied, Func<long> labelsLearned)
{
    public string EventsTopic { get; init; } = "events";

    public string LabelsTopic { get; init; } = "labels";

    /// <summary>Whether Score rows carry the item id (a model over ids) or not (a model over the aggregates alone).</summary>
    public bool WithIds { get; init; } = true;

    public int EventsPerUser { get; init; } = 2;

    public int Block { get; init; } = 512;

    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Where to write the batch reference's input (users.csv, labels.csv); null writes nothing.</summary>
    public string? ReferenceDirectory { get; init; }

    public async Task<PlantedResult> RunAsync(int labels, int measured, int heldOut)
    {
        var scoring = new ScoringService.ScoringServiceClient(channel);
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5, EnableIdempotence = true, Partitioner = Partitioner.Murmur2Random }).Build();
        long events = 0;
        for (int round = 0; round < EventsPerUser; round++)
        {
            for (int user = 0; user < workload.Users; user++)
            {
                var e = workload.NextEvent(user);
                Produce(producer, EventsTopic, PlantedIds.UserKey(user), e.Json);
                events++;
            }
        }
        Flush(producer);
        await Until(() => eventsApplied() >= events, () => $"{events} events applied (so far {eventsApplied()})");
        var data = ReferenceDirectory is null ? null : await StartReferenceAsync(scoring);

        long learnedBefore = labelsLearned();
        double progressive = 0, plantedProgressive = 0;
        var clock = Stopwatch.StartNew();
        var block = new List<PlantedLabel>(Block);
        for (int sent = 0; sent < labels; sent += block.Count)
        {
            block.Clear();
            for (int i = 0; i < Math.Min(Block, labels - sent); i++)
            {
                block.Add(workload.NextLabel());
            }
            var scores = await ScoreAsync(scoring, block);
            for (int i = 0; i < block.Count; i++)
            {
                if (sent + i >= labels - measured)
                {
                    progressive += PlantedIds.LogLoss(scores[i], block[i].Label);
                    plantedProgressive += PlantedIds.LogLoss(block[i].Probability, block[i].Label);
                }
                Produce(producer, LabelsTopic, PlantedIds.UserKey(block[i].User), block[i].Json);
                data?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{block[i].User},{block[i].Item},{block[i].Label},train"));
            }
            Flush(producer);
            long expected = learnedBefore + sent + block.Count;
            await Until(() => labelsLearned() >= expected, () => $"{expected - learnedBefore} labels learned (so far {labelsLearned() - learnedBefore})");
        }
        double rate = labels / clock.Elapsed.TotalSeconds;

        double held = 0, plantedHeld = 0;
        for (int done = 0; done < heldOut; done += block.Count)
        {
            block.Clear();
            for (int i = 0; i < Math.Min(Block, heldOut - done); i++)
            {
                block.Add(workload.NextLabel());
            }
            var scores = await ScoreAsync(scoring, block);
            for (int i = 0; i < block.Count; i++)
            {
                held += PlantedIds.LogLoss(scores[i], block[i].Label);
                plantedHeld += PlantedIds.LogLoss(block[i].Probability, block[i].Label);
                data?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{block[i].User},{block[i].Item},{block[i].Label},held_out"));
            }
        }
        data?.Dispose();
        return new PlantedResult(progressive / measured, plantedProgressive / measured, held / heldOut, plantedHeld / heldOut, measured, heldOut, rate);
    }

    /// <summary>
    /// Learning throughput: <paramref name="labels"/> labels produced at once (a backlog), then the time until the
    /// engine has learned them all; labels per second, from the first learned to the last.
    /// </summary>
    public async Task<double> LearnBacklogAsync(int labels)
    {
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 20, EnableIdempotence = true, Partitioner = Partitioner.Murmur2Random }).Build();
        long before = labelsLearned();
        for (int i = 0; i < labels; i++)
        {
            var label = workload.NextLabel();
            Produce(producer, LabelsTopic, PlantedIds.UserKey(label.User), label.Json);
        }
        Flush(producer);
        await Until(() => labelsLearned() > before, () => "a first label learned");
        var clock = Stopwatch.StartNew();
        long first = labelsLearned();
        await Until(() => labelsLearned() >= before + labels, () => $"{labels} labels learned (so far {labelsLearned() - before})");
        return (before + labels - first) / clock.Elapsed.TotalSeconds;
    }

    private async Task<float[]> ScoreAsync(ScoringService.ScoringServiceClient scoring, List<PlantedLabel> block)
    {
        var request = new ScoreRequest();
        foreach (var label in block)
        {
            var row = new ScoreRow { Entity = PlantedIds.UserKey(label.User) };
            if (WithIds)
            {
                row.Ids.Add("item", PlantedIds.ItemKey(label.Item));
            }
            request.Rows.Add(row);
        }
        var response = await scoring.ScoreAsync(request);
        return [.. response.Scores];
    }

    /// <summary>Writes users.csv (each user's aggregates as the engine reads them) and opens labels.csv.</summary>
    private async Task<StreamWriter> StartReferenceAsync(ScoringService.ScoringServiceClient scoring)
    {
        Directory.CreateDirectory(ReferenceDirectory!);
        await using (var users = new StreamWriter(Path.Combine(ReferenceDirectory!, "users.csv")))
        {
            for (int first = 0; first < workload.Users; first += Block)
            {
                var request = new GetFeaturesRequest();
                for (int user = first; user < Math.Min(workload.Users, first + Block); user++)
                {
                    request.Entities.Add(PlantedIds.UserKey(user));
                }
                var response = await scoring.GetFeaturesAsync(request);
                if (first == 0)
                {
                    await users.WriteLineAsync("user," + string.Join(',', response.FeatureNames));
                }
                for (int r = 0; r < response.Entities.Count; r++)
                {
                    await users.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{first + r},") + string.Join(',', response.Entities[r].Values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
                }
            }
        }
        var labels = new StreamWriter(Path.Combine(ReferenceDirectory!, "labels.csv"));
        await labels.WriteLineAsync("user,item,label,split");
        return labels;
    }

    /// <summary>Produces one message, waiting for room while the producer's queue is full (a backlog of millions).</summary>
    private static void Produce(IProducer<string, byte[]> producer, string topic, string key, byte[] value)
    {
        while (true)
        {
            try
            {
                producer.Produce(topic, new Message<string, byte[]> { Key = key, Value = value });
                return;
            }
            catch (ProduceException<string, byte[]> error) when (error.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(50));
            }
        }
    }

    private static void Flush(IProducer<string, byte[]> producer)
    {
        int left = producer.Flush(TimeSpan.FromSeconds(60));
        if (left > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered 60 s after the flush.");
        }
    }

    private async Task Until(Func<bool> condition, Func<string> expectation)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > Timeout)
            {
                throw new TimeoutException($"Timed out after {Timeout.TotalSeconds:0} s waiting for: {expectation()}");
            }
            await Task.Delay(2);
        }
    }
}
