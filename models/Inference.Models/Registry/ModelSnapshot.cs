using System.Diagnostics;
using System.Runtime.InteropServices;
using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>
/// An immutable published model: its own module instance (the parameters are imported into it, which
/// checks every name and shape), never trained, and its forward pass evaluated directly over the
/// parameters (<see cref="DirectForward"/>), read by any number of scoring threads at once. Reference
/// counted, so a swap never frees a module a request still uses.
/// </summary>
public sealed class ModelSnapshot
{
    private readonly ScoringModule _module;
    private readonly DirectForward _forward;
    private int _references = 1; // the registry's own reference

    internal ModelSnapshot(ModelSpec spec, ParameterSet parameters, long version)
    {
        _module = new ScoringModule(spec);
        _module.Import(parameters);
        _module.eval();
        _forward = new DirectForward(spec, parameters);
        Version = version;
        Parameters = parameters;
    }

    public long Version { get; private set; }

    /// <summary>Gives a snapshot built before its version was known its number (before anyone can lease it).</summary>
    internal void Number(long version) => Version = version;

    public ModelSpec Spec => _module.Spec;

    /// <summary>The published parameters (a copy detached from the module).</summary>
    public ParameterSet Parameters { get; }

    /// <summary>Probabilities for <paramref name="rows"/> rows of model input (row-major, <see cref="ModelSpec.Inputs"/> wide).</summary>
    public void Score(float[] inputs, int rows, Span<float> scores) => Score(inputs, null, rows, scores);

    /// <summary>
    /// Probabilities for <paramref name="rows"/> rows of model input and, for the models over ids, the rows'
    /// embeddings (row-major, <see cref="ModelSpec.EmbeddingWidth"/> wide).
    /// </summary>
    public void Score(float[] inputs, float[]? embeddings, int rows, Span<float> scores)
    {
        Debug.Assert(Volatile.Read(ref _references) > 0, "Scoring needs a lease on the snapshot.");
        if (scores.Length < rows)
        {
            throw new ArgumentException("The score span is shorter than the row count.", nameof(scores));
        }
        if (inputs.Length < rows * Spec.Inputs)
        {
            throw new ArgumentException($"{rows} rows need {rows * Spec.Inputs} inputs; the array holds {inputs.Length}.", nameof(inputs));
        }
        if (Spec.HasIds && (embeddings is null || embeddings.Length < rows * Spec.EmbeddingWidth))
        {
            throw new ArgumentException($"A {Spec.Kind} model scores {rows} rows with {rows * Spec.EmbeddingWidth} embedding values.", nameof(embeddings));
        }
        _forward.Score(inputs, embeddings, rows, scores);
    }

    internal bool TryAcquire()
    {
        while (true)
        {
            int current = Volatile.Read(ref _references);
            if (current == 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _module.Dispose();
        }
    }
}

/// <summary>A scoring thread's hold on a snapshot; dispose it when the request is scored.</summary>
[StructLayout(LayoutKind.Auto)]
public readonly struct ModelLease : IDisposable
{
    internal ModelLease(ModelSnapshot snapshot)
    {
        Snapshot = snapshot;
    }

    public ModelSnapshot Snapshot { get; }

    public void Dispose() => Snapshot?.Release();
}
