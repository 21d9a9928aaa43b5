using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>
/// Holds the published model. Publishing builds a new snapshot and swaps it in atomically; scoring
/// takes a lease on whatever is current and never waits for training or publishing.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    private readonly Lock _publishGate = new();
    private ModelSnapshot _current;

    /// <summary>
    /// Starts at version 1 with <paramref name="initial"/> (e.g. a model imported from PyTorch), or the
    /// spec's seeded initial weights when none is given.
    /// </summary>
    public ModelRegistry(ModelSpec spec, ParameterSet? initial = null, string? origin = null)
    {
        Spec = spec;
        using var module = new ScoringModule(spec);
        if (initial is not null)
        {
            // Checked against the module: every parameter present with its shape.
            module.Import(initial);
        }
        _current = new ModelSnapshot(spec, module.Export(), version: 1);
        Imported = initial is not null;
        Origin = origin ?? (initial is null ? $"seeded weights (seed {spec.Seed})" : "given weights");
    }

    public ModelSpec Spec { get; }

    /// <summary>True when version 1 is a model brought from elsewhere rather than seeded weights.</summary>
    public bool Imported { get; }

    /// <summary>Where version 1 came from, for logs.</summary>
    public string Origin { get; }

    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>Raised after each publish with the new version.</summary>
    public event Action<long>? Published;

    public ModelLease Acquire()
    {
        while (true)
        {
            var snapshot = Volatile.Read(ref _current);
            if (snapshot.TryAcquire())
            {
                return new ModelLease(snapshot);
            }
        }
    }

    /// <summary>The current version and its parameters, read together.</summary>
    public (long Version, ParameterSet Parameters) Current()
    {
        var snapshot = Volatile.Read(ref _current);
        return (snapshot.Version, snapshot.Parameters);
    }

    /// <summary>The current parameters (a copy).</summary>
    public ParameterSet CurrentParameters() => Volatile.Read(ref _current).Parameters;

    /// <summary>Publishes new parameters as the next version and returns it.</summary>
    public long Publish(ParameterSet parameters)
    {
        long version;
        lock (_publishGate)
        {
            var next = new ModelSnapshot(Spec, parameters, Volatile.Read(ref _current).Version + 1);
            var previous = Interlocked.Exchange(ref _current, next);
            previous.Release();
            version = next.Version;
        }
        Published?.Invoke(version);
        return version;
    }

    public void Dispose() => Interlocked.Exchange(ref _current, null!)?.Release();
}
