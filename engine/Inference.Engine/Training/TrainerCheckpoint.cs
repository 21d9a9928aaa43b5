using System.Text.Json.Serialization;
using Inference.Engine.Kafka;
using Inference.Kernels.Embeddings;
using Inference.Models.Training;

namespace Inference.Engine.Training;

/// <summary>
/// The trainer's part of a checkpoint, taken on the trainer's thread between two mini-batches: its
/// weights and statistics, the label offsets they include, and its counters.
/// </summary>
/// <param name="Learner">Weights, standardisation and the statistics behind it.</param>
/// <param name="LabelOffsets">Per label partition, the last offset learned from (or skipped as malformed).</param>
/// <param name="LabelsLearned">Labels learned from since the first start (across restarts).</param>
/// <param name="LabelsSkipped">Labels in mini-batches skipped for non-finite values, since the first start.</param>
/// <param name="BaseVersion">The parameter-server version the weights were last merged with (0: none).</param>
/// <param name="LearningRate">The SGD learning rate (plain SGD keeps no other optimizer state).</param>
internal sealed record TrainerCheckpoint(
    LearnerState Learner,
    IReadOnlyList<PartitionOffset> LabelOffsets,
    long LabelsLearned,
    long LabelsSkipped,
    long BaseVersion,
    double LearningRate)
{
    /// <summary>A model over ids: its embedding tables (rows and their optimizer state), one per id input, at the same cut; files of their own in a checkpoint.</summary>
    [JsonIgnore]
    public IReadOnlyList<EmbeddingSnapshot>? Embeddings { get; init; }

    /// <summary>A model over ids: its id inputs in model-input order (what an export names the tables after).</summary>
    public IReadOnlyList<CheckpointIdInput>? IdInputs { get; init; }

    /// <summary>The registry's lineage (newest 1024 versions' records) at the cut: versions go on from it after a restart.</summary>
    public IReadOnlyList<Models.Registry.ModelVersion>? Lineage { get; init; }

    /// <summary>Each version's cumulative progressive figures at the cut.</summary>
    public IReadOnlyList<VersionFigures>? Figures { get; init; }

    /// <summary>The learner's hyperparameters when a promoted candidate learner set them (null: the configured ones).</summary>
    public LearnerHyperparameters? Hyperparameters { get; init; }
}

/// <summary>A learner's learning rate and optimizer.</summary>
internal sealed record LearnerHyperparameters(double LearningRate, Models.Training.DenseOptimizerKind Optimizer);

/// <summary>One id input of a checkpointed model over ids: its name, source and dimension.</summary>
internal sealed record CheckpointIdInput(string Name, string Source, int Dimension);

/// <summary>Where the trainer meets the checkpoints: the state it starts from, and its answers to "your state, please" on its own thread.</summary>
internal interface ITrainerCheckpoints
{
    /// <summary>The trainer's part of the checkpoint the engine started from; null when it started empty.</summary>
    TrainerCheckpoint? Restored { get; }

    /// <summary>The trainer runs and answers requests for its state from now on.</summary>
    void Attach();

    /// <summary>On the trainer's thread: answers pending requests with <paramref name="capture"/>'s state.</summary>
    void Serve(Func<TrainerCheckpoint> capture);

    /// <summary>The trainer stopped: requests waiting for it, and any made from now on, are cancelled.</summary>
    void Detach();
}
