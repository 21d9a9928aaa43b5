using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// The model lifecycle through the engine, with real gRPC clients: a broken canary is withdrawn by the guard without
/// ever serving as the model, a better file in shadow is promoted on its own, and 64 callers scoring throughout never
/// fail and are always told which version answered. Labels are planted from the request features
/// (P(label) = σ(3·r0 − 2·r1)); the serving model barely learns (learning rate 1e-6), so a candidate's worth is
/// what the file brings.
/// </summary>
public sealed class ModelLifecycleTests(ITestOutputHelper output)
{
    private const int Users = 200;
    private const int GuardLabels = 512;
    private const double CanaryShare = 0.1;

    [Fact]
    public async Task A_broken_canary_is_withdrawn_within_the_guard_window_and_a_better_shadow_is_promoted_while_64_callers_score()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Model:RequestFeatures"] = "2";
        settings["Inference:Training:BatchSize"] = "32";
        settings["Inference:Training:LearningRate"] = "0.000001";
        settings["Inference:Training:PublishIntervalMs"] = "20";
        settings["Inference:Training:GuardLabels"] = GuardLabels.ToString(CultureInfo.InvariantCulture);
        EngineHarness.Declare(settings, ("amount", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);
        var models = new ModelService.ModelServiceClient(engine.Channel);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var metrics = engine.Get<LifecycleMetrics>();

        var events = Enumerable.Range(0, Users).Select(u => Streams.Json($"user-{u}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{u}\",\"ts\":1767225600000,\"amount\":{u}}}"))).ToList();
        await engine.ProduceAndWaitAsync("events", events, new Taken(Users));

        // 64 callers score one row each, back to back, until the end.
        var answers = new ConcurrentBag<(long Version, long[] RowVersions, string Entity)>();
        var asked = new ConcurrentDictionary<string, (float R0, float R1)>();
        var failures = new ConcurrentBag<string>();
        var slowest = new long[64];
        using var stop = new CancellationTokenSource();
        var callers = Enumerable.Range(0, 64).Select(c => Task.Run(async () =>
        {
            var random = new Random(c);
            for (int call = 0; !stop.IsCancellationRequested; call++)
            {
                string entity = $"user-{random.Next(Users)}";
                var request = new ScoreRequest();
                var row = new ScoreRow { Entity = entity, RequestId = $"caller-{c}-{call}" };
                float r0 = (float)Normal(random), r1 = (float)Normal(random);
                row.RequestFeatures.Add([r0, r1]);
                asked[row.RequestId] = (r0, r1);
                request.Rows.Add(row);
                long started = Stopwatch.GetTimestamp();
                try
                {
                    var response = await scoring.ScoreAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
                    answers.Add((response.ModelVersion, [.. response.RowVersions], entity));
                }
                catch (RpcException error)
                {
                    failures.Add(error.Status.ToString());
                }
                slowest[c] = Math.Max(slowest[c], Stopwatch.GetTimestamp() - started);
            }
        })).ToList();

        var shape = await scoring.GetModelAsync(new GetModelRequest());
        var planted = Tensors(shape, 3f, -2f);

        // A broken file (the planted weights flipped) as a canary answering 10% of the entities.
        var broken = await models.LoadCandidateAsync(Load(Tensors(shape, -3f, 2f), CandidateMode.Canary, CanaryShare, autoPromote: true));
        long brokenVersion = broken.Version.Version;
        await EngineHarness.WaitUntil(() => answers.Any(a => a.RowVersions.Length > 0 && a.RowVersions[0] == brokenVersion), TimeSpan.FromSeconds(30),
            () => "the canary answered no call");
        await engine.ProduceAndWaitAsync("labels", Labels(GuardLabels, seed: 1, firstTs: 1767225600001), new Taken(Users, Labels: GuardLabels), TimeSpan.FromSeconds(60));
        var afterCanary = await models.ListVersionsAsync(new ListVersionsRequest());
        Assert.False(afterCanary.Candidate.Present, "the broken canary is still a candidate after the guard's window");
        Assert.Equal(1, metrics.Candidates("rolled_back"));
        Assert.DoesNotContain(afterCanary.Versions, v => v.Origin == "Promoted");
        var canaryRecord = afterCanary.Versions.Single(v => v.Version == brokenVersion);
        Assert.InRange(canaryRecord.Figures.Labels, 1, GuardLabels / 4);
        output.WriteLine($"canary v{brokenVersion}: {canaryRecord.Figures.Labels} labels answered, log loss {canaryRecord.Figures.LogLoss:F3}; {afterCanary.Versions.Count} versions recorded");

        // A better file (the planted model) in shadow, promoted on its own once it validates better.
        var better = await models.LoadCandidateAsync(Load(planted, CandidateMode.Shadow, 0, autoPromote: true));
        // Its scores are logged beside what was served: the planted model's for the row's request features.
        var log = engine.Get<FeatureLog>();
        (string? Id, float Score) shadowed = default;
        await EngineHarness.WaitUntil(() =>
        {
            foreach (var (id, inputs) in asked)
            {
                if (log.FindShadow(EntityKey.Hash(id)) is { } shadow && shadow.Version == better.Version.Version)
                {
                    shadowed = (id, shadow.Score);
                    return true;
                }
            }
            return false;
        }, TimeSpan.FromSeconds(30), () => "no shadow score in the feature log");
        var (r0, r1) = asked[shadowed.Id!];
        Assert.Equal(1 / (1 + Math.Exp(-(3.0 * r0 - 2.0 * r1))), shadowed.Score, 1e-5);
        await engine.ProduceAndWaitAsync("labels", Labels(GuardLabels, seed: 2, firstTs: 1767225700000), new Taken(Users, Labels: 2 * GuardLabels), TimeSpan.FromSeconds(60));
        var afterShadow = await models.ListVersionsAsync(new ListVersionsRequest());
        Assert.False(afterShadow.Candidate.Present, "the better shadow was not promoted within the guard's window");
        var promoted = afterShadow.Versions.Single(v => v.Origin == "Promoted");
        Assert.Equal(better.Version.Id, promoted.Id);
        Assert.Equal(1, metrics.Candidates("promoted"));
        Assert.True(metrics.ShadowRows > 0, "the shadow scored no row");
        var served = await scoring.GetModelAsync(new GetModelRequest { Version = promoted.Version });
        Assert.Equal(planted.Select(t => t.Values.ToArray()), served.Tensors.Select(t => t.Values.ToArray()));
        Assert.Equal("Promoted", served.Info.Origin);

        // The callers go on across the promotion, then stop.
        await EngineHarness.WaitUntil(() => answers.Any(a => a.Version >= promoted.Version), TimeSpan.FromSeconds(30), () => "no Score answered by the promoted version");
        await stop.CancelAsync();
        await Task.WhenAll(callers);
        Assert.Empty(failures);
        var all = answers.ToList();
        Assert.All(all, a => Assert.True(a.Version > 0));
        Assert.DoesNotContain(all, a => a.Version == brokenVersion);
        // The canary answered exactly the rows of its entities, and every such answer said so.
        var canaryRows = all.Where(a => a.RowVersions.Length > 0).ToList();
        Assert.NotEmpty(canaryRows);
        Assert.All(canaryRows, a => Assert.Equal(Canary.Answers(EntityKey.Hash(a.Entity), CanaryShare) ? brokenVersion : a.Version, a.RowVersions[0]));
        Assert.Contains(canaryRows, a => a.RowVersions[0] == brokenVersion);
        output.WriteLine($"{all.Count} answers, {canaryRows.Count} while the canary served ({canaryRows.Count(a => a.RowVersions[0] == brokenVersion)} by it); slowest call {slowest.Max() * 1000.0 / Stopwatch.Frequency:F1} ms");
    }

    [Fact]
    public async Task The_command_line_loads_withdraws_promotes_and_rolls_back_on_a_running_engine()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Model:RequestFeatures"] = "2";
        EngineHarness.Declare(settings, ("amount", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var shape = await scoring.GetModelAsync(new GetModelRequest());
        string file = Path.Combine(Path.GetTempPath(), $"candidate-{Guid.NewGuid():N}.safetensors");
        Inference.Models.Exchange.ModelFile.Write(file, new Inference.Models.Parameters.ParameterSet(
            [.. Tensors(shape, 3f, -2f).Select(t => new Inference.Models.Parameters.NamedParameter(t.Name, [.. t.Shape], [.. t.Values]))]));
        try
        {
            (int Code, string Output) Run(params string[] args) => EngineProcess.RunCommand(["model", .. args]);

            var (code, output) = Run("load", file, "--to", engine.Address, "--canary", "0.5");
            Assert.True(code == 0, output);
            Assert.Contains("candidate v2", output);
            (code, output) = Run("versions", "--from", engine.Address);
            Assert.True(code == 0, output);
            Assert.Contains("candidate v2 (Canary)", output);
            (code, output) = Run("withdraw", "--to", engine.Address);
            Assert.True(code == 0, output);
            (code, output) = Run("promote", "--to", engine.Address);
            Assert.True(code == 1, output);
            Assert.Contains("FailedPrecondition", output);

            (code, output) = Run("load", file, "--to", engine.Address);
            Assert.True(code == 0, output);
            (code, output) = Run("promote", "--to", engine.Address);
            Assert.True(code == 0, output);
            // (A single node's own parameter server may publish the merged weights as a version after it.)
            var models = new ModelService.ModelServiceClient(engine.Channel);
            var promoted = (await models.ListVersionsAsync(new ListVersionsRequest())).Versions.Single(v => v.Origin == "Promoted");
            var served = await scoring.GetModelAsync(new GetModelRequest { Version = promoted.Version });
            Assert.Equal(3f, served.Tensors.Single(t => t.Name.EndsWith("weight", StringComparison.Ordinal)).Values[1]);

            (code, output) = Run("rollback", "--to", engine.Address, "--version", "1");
            Assert.True(code == 0, output);
            var rolledBack = (await models.ListVersionsAsync(new ListVersionsRequest())).Versions.Single(v => v.Origin == "Rollback");
            Assert.Equal(shape.Info.Id, rolledBack.Id);
            Assert.Contains($"v{rolledBack.Version} {rolledBack.Id} Rollback", output);
            var again = await scoring.GetModelAsync(new GetModelRequest { Version = rolledBack.Version });
            Assert.Equal(shape.Tensors.Select(t => t.Values.ToArray()), again.Tensors.Select(t => t.Values.ToArray()));
            (code, output) = Run("rollback", "--to", engine.Address, "--version", "999");
            Assert.True(code == 1, output);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_candidate_learner_with_a_better_learning_rate_is_promoted_and_the_trainer_goes_on_with_it()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Model:RequestFeatures"] = "2";
        settings["Inference:Training:BatchSize"] = "32";
        settings["Inference:Training:LearningRate"] = "0.000001";
        settings["Inference:Training:PublishIntervalMs"] = "20";
        settings["Inference:Training:GuardLabels"] = GuardLabels.ToString(CultureInfo.InvariantCulture);
        EngineHarness.Declare(settings, ("amount", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);
        var models = new ModelService.ModelServiceClient(engine.Channel);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var events = Enumerable.Range(0, Users).Select(u => Streams.Json($"user-{u}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{u}\",\"ts\":1767225600000,\"amount\":{u}}}"))).ToList();
        await engine.ProduceAndWaitAsync("events", events, new Taken(Users));

        // Refused: a learner with tensors, a learning rate that is not positive, an unknown optimizer.
        var shape = await scoring.GetModelAsync(new GetModelRequest());
        var both = Load(Tensors(shape, 1f, 1f), CandidateMode.Shadow, 0, autoPromote: true);
        both.Learner = new CandidateLearner { LearningRate = 0.5 };
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => models.LoadCandidateAsync(both).ResponseAsync)).StatusCode);
        foreach (var bad in new[] { new CandidateLearner { LearningRate = 0 }, new CandidateLearner { LearningRate = 0.5, Optimizer = "Lion" } })
        {
            var refused = new LoadCandidateRequest { Mode = CandidateMode.Shadow, Learner = bad };
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => models.LoadCandidateAsync(refused).ResponseAsync)).StatusCode);
        }

        var status = await models.LoadCandidateAsync(new LoadCandidateRequest
        {
            Mode = CandidateMode.Shadow,
            AutoPromote = true,
            Learner = new CandidateLearner { LearningRate = 0.5, Optimizer = "Sgd" },
        });
        Assert.Equal("learning rate 0.5, Sgd", status.Learner);
        long candidacyStart = status.Version.Version;
        int rounds = 0;
        ModelVersionInfo? promoted = null;
        while (promoted is null && rounds < 8)
        {
            rounds++;
            await engine.ProduceAndWaitAsync("labels", Labels(GuardLabels, seed: 10 + rounds, firstTs: 1767225600001 + rounds * 10_000L),
                new Taken(Users, Labels: rounds * GuardLabels), TimeSpan.FromSeconds(60));
            promoted = (await models.ListVersionsAsync(new ListVersionsRequest())).Versions.SingleOrDefault(v => v.Origin == "Promoted");
        }
        Assert.True(promoted is not null, $"the candidate learner was not promoted after {rounds} windows of {GuardLabels} labels");
        Assert.Contains("learning rate 0.5", promoted!.Note);
        // Versions the learner published while a candidate, each made from the one before.
        var history = (await models.ListVersionsAsync(new ListVersionsRequest())).Versions;
        Assert.Contains(history, v => v.Version > candidacyStart && v.Note.Contains("the candidate learner", StringComparison.Ordinal));

        // The trainer now learns at 0.5 (at 1e-6 a window of labels would move the weights by about 1e-5).
        var before = await scoring.GetModelAsync(new GetModelRequest { Version = promoted.Version });
        await engine.ProduceAndWaitAsync("labels", Labels(GuardLabels, seed: 99, firstTs: 1767226600000),
            new Taken(Users, Labels: (rounds + 1) * GuardLabels), TimeSpan.FromSeconds(60));
        await EngineHarness.WaitUntil(() => engine.Get<Inference.Models.Registry.ModelRegistry>().Version > promoted.Version + 1, TimeSpan.FromSeconds(30), () => "no publish after the promotion");
        var after = await scoring.GetModelAsync(new GetModelRequest());
        double moved = before.Tensors.Zip(after.Tensors).Where(p => p.First.Name.EndsWith("weight", StringComparison.Ordinal))
            .SelectMany(p => p.First.Values.Zip(p.Second.Values, (a, b) => Math.Abs(a - b))).Max();
        Assert.True(moved > 0.01, $"the weights moved by {moved} over a window of labels after the promotion");
    }

    private static LoadCandidateRequest Load(IEnumerable<NamedTensor> tensors, CandidateMode mode, double share, bool autoPromote)
    {
        var request = new LoadCandidateRequest { Mode = mode, CanaryShare = share, AutoPromote = autoPromote, Source = "the test" };
        request.Tensors.Add(tensors);
        return request;
    }

    /// <summary>The engine's tensors with a logistic model over (amount, r0, r1) of weights (0, w0, w1), no bias, identity standardisation.</summary>
    private static List<NamedTensor> Tensors(GetModelResponse shape, float w0, float w1) => [.. shape.Tensors.Select(t =>
    {
        var tensor = new NamedTensor { Name = t.Name };
        tensor.Shape.Add(t.Shape);
        float[] values = t.Name switch
        {
            _ when t.Name.EndsWith("weight", StringComparison.Ordinal) => [0f, w0, w1],
            "input_scale" => [1f, 1f, 1f],
            _ => new float[t.Values.Count],
        };
        tensor.Values.Add(values);
        return tensor;
    })];

    private static List<Confluent.Kafka.Message<string, byte[]>> Labels(int count, int seed, long firstTs)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            int u = random.Next(Users);
            double r0 = Normal(random), r1 = Normal(random);
            int label = random.NextDouble() < 1 / (1 + Math.Exp(-(3 * r0 - 2 * r1))) ? 1 : 0;
            return Streams.Json($"user-{u}", string.Create(CultureInfo.InvariantCulture,
                $"{{\"entity\":\"user-{u}\",\"ts\":{firstTs + i},\"label\":{label},\"request_features\":[{r0:R},{r1:R}]}}"));
        })];
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
