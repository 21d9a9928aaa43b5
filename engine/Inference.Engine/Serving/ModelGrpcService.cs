using Grpc.Core;
using Inference.Engine.Training;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Proto.V1;
using CandidateMode = Inference.Proto.V1.CandidateMode;

namespace Inference.Engine.Serving;

/// <summary>
/// The model lifecycle's admin endpoint: registers a candidate (shadow or canary), withdraws or promotes it, rolls the
/// serving model back, and lists the registry's lineage. Promotion and rollback run on the trainer's thread (it owns
/// the learner) and swap the serving model by the registry's atomic publish: no Score call waits.
/// </summary>
internal sealed class ModelGrpcService(ModelLifecycle lifecycle) : ModelService.ModelServiceBase
{
    private ModelRegistry Registry => lifecycle.Registry;

    public override async Task<CandidateStatus> LoadCandidate(LoadCandidateRequest request, ServerCallContext context)
    {
        var mode = request.Mode switch
        {
            CandidateMode.Shadow => Models.Registry.CandidateMode.Shadow,
            CandidateMode.Canary => Models.Registry.CandidateMode.Canary,
            _ => throw Invalid("mode must be SHADOW or CANARY."),
        };
        if (mode == Models.Registry.CandidateMode.Canary && !(request.CanaryShare > 0 && request.CanaryShare <= 1))
        {
            throw Invalid($"canary_share is {request.CanaryShare}; a canary answers a share of the entities in (0, 1].");
        }
        if (request.Learner is { } learner)
        {
            return await LoadLearner(request, learner, mode, context).ConfigureAwait(false);
        }
        var parameters = Parameters(request.Tensors);
        if (!parameters.IsFinite())
        {
            throw Invalid("The candidate's tensors hold a value that is not finite.");
        }
        CandidateInfo info;
        try
        {
            info = lifecycle.Load(parameters, mode, mode == Models.Registry.CandidateMode.Canary ? request.CanaryShare : 0, request.AutoPromote,
                string.IsNullOrEmpty(request.Source) ? "a model loaded over ModelService" : request.Source);
        }
        catch (ArgumentException error)
        {
            throw Invalid($"The candidate does not fit the engine's {Registry.Spec.Kind} model of {Registry.Spec.Inputs} inputs: {error.Message}");
        }
        return Status(info);
    }

    private async Task<CandidateStatus> LoadLearner(LoadCandidateRequest request, CandidateLearner learner, Models.Registry.CandidateMode mode, ServerCallContext context)
    {
        if (request.Tensors.Count > 0)
        {
            throw Invalid("A candidate is tensors or a learner, not both.");
        }
        if (!(learner.LearningRate > 0) || !double.IsFinite(learner.LearningRate))
        {
            throw Invalid($"learner.learning_rate is {learner.LearningRate}; it must be a positive number.");
        }
        if (!Enum.TryParse<Models.Training.DenseOptimizerKind>(string.IsNullOrEmpty(learner.Optimizer) ? "Sgd" : learner.Optimizer, ignoreCase: true, out var optimizer)
            || !Enum.IsDefined(optimizer))
        {
            throw Invalid($"learner.optimizer is '{learner.Optimizer}'; it must be Sgd, Adam or Adagrad.");
        }
        try
        {
            await lifecycle.LoadLearnerAsync(learner.LearningRate, optimizer, mode, mode == Models.Registry.CandidateMode.Canary ? request.CanaryShare : 0, request.AutoPromote)
                .WaitAsync(context.CancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException error)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
        return Status(Registry.Candidate);
    }

    public override Task<CandidateStatus> WithdrawCandidate(WithdrawCandidateRequest request, ServerCallContext context) =>
        Task.FromResult(Status(lifecycle.Withdraw() ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "There is no candidate to withdraw."))));

    public override async Task<ModelVersionInfo> Promote(PromoteRequest request, ServerCallContext context)
    {
        try
        {
            return Info(await lifecycle.PromoteAsync().WaitAsync(context.CancellationToken).ConfigureAwait(false));
        }
        catch (InvalidOperationException error)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
    }

    public override async Task<ModelVersionInfo> RollBack(RollBackRequest request, ServerCallContext context)
    {
        if (request.Version < 0)
        {
            throw Invalid($"version is {request.Version}; name a version, or 0 for the guard's baseline.");
        }
        try
        {
            return Info(await lifecycle.RollBackAsync(request.Version).WaitAsync(context.CancellationToken).ConfigureAwait(false));
        }
        catch (InvalidOperationException error)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
    }

    public override Task<ListVersionsResponse> ListVersions(ListVersionsRequest request, ServerCallContext context)
    {
        if (request.Limit < 0)
        {
            throw Invalid($"limit is {request.Limit}; 0 lists every recorded version.");
        }
        var response = new ListVersionsResponse { Serving = Registry.Version, Baseline = lifecycle.BaselineVersion, Candidate = Status(Registry.Candidate) };
        foreach (var record in request.Limit == 0 ? Registry.History() : Registry.History().Take(request.Limit))
        {
            response.Versions.Add(Info(record));
        }
        return Task.FromResult(response);
    }

    private ModelVersionInfo Info(ModelVersion record) => Info(lifecycle, record);

    /// <summary>A registry record as the protocol writes it, with its progressive figures.</summary>
    internal static ModelVersionInfo Info(ModelLifecycle lifecycle, ModelVersion record)
    {
        var info = new ModelVersionInfo
        {
            Version = record.Version,
            Id = record.Id,
            Parent = record.Parent,
            CreatedMs = record.Created.ToUnixTimeMilliseconds(),
            Origin = record.Origin.ToString(),
            Note = record.Note,
            WeightsKept = lifecycle.Registry.Parameters(record.Version) is not null,
        };
        if (lifecycle.Figures(record.Version) is { Labels: > 0 } figures)
        {
            info.Figures = new ProgressiveFigures
            {
                Labels = figures.Labels,
                LogLoss = figures.LossSum / figures.Labels,
                MeanScore = figures.ScoreSum / figures.Labels,
                PositiveRate = figures.LabelSum / figures.Labels,
            };
        }
        return info;
    }

    private CandidateStatus Status(CandidateInfo? candidate) => candidate is null ? new CandidateStatus() : new CandidateStatus
    {
        Present = true,
        Version = Info(candidate.Version),
        Mode = candidate.Mode == Models.Registry.CandidateMode.Canary ? CandidateMode.Canary : CandidateMode.Shadow,
        CanaryShare = candidate.CanaryShare,
        AutoPromote = candidate.AutoPromote,
        Learner = candidate.Learner ?? "",
    };

    private static ParameterSet Parameters(IList<NamedTensor> tensors)
    {
        if (tensors.Count == 0)
        {
            throw Invalid("The request holds no tensors.");
        }
        var parameters = new List<NamedParameter>(tensors.Count);
        foreach (var tensor in tensors)
        {
            long size = 1;
            foreach (long dimension in tensor.Shape)
            {
                size = dimension < 0 ? -1 : size * dimension;
            }
            if (size != tensor.Values.Count)
            {
                throw Invalid($"Tensor '{tensor.Name}' has shape [{string.Join(", ", tensor.Shape)}] and {tensor.Values.Count} values.");
            }
            parameters.Add(new NamedParameter(tensor.Name, [.. tensor.Shape], [.. tensor.Values]));
        }
        return new ParameterSet(parameters);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
