using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>
/// Holds the published model, its lineage and at most one candidate. Publishing builds a new snapshot and swaps it
/// in atomically; scoring takes a lease on whatever is current (or on the candidate) and never waits for training,
/// publishing or a promotion. Every version is recorded (the newest <see cref="HistoryLimit"/>) with a content id,
/// its parent, when and how it was made; the weights of the versions a rollback may return to are kept.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    /// <summary>Version records kept (metadata only; weights for the retained ones).</summary>
    public const int HistoryLimit = 1_024;

    // Besides the serving version, its guard's baseline and the candidate: the newest versions not made by online
    // learning (imported, promoted, rolled back, restored) keep their weights, for rollback and GetModel.
    private const int RetainedMilestones = 4;

    private readonly Lock _publishGate = new();
    private readonly TimeProvider _time;
    private readonly LinkedList<ModelVersion> _history = new();
    private readonly Dictionary<long, ParameterSet> _retained = [];
    private ModelSnapshot _current;
    private Candidacy? _candidate;
    private long _lastVersion;
    private long _pinned;
    // After a restore: the restored lineage's newest version, the parent of the next one published.
    private long _restoredParent;
    private long _candidacies;

    /// <summary>
    /// Starts at version 1 with <paramref name="initial"/> (e.g. a model imported from PyTorch), or the
    /// spec's seeded initial weights when none is given.
    /// </summary>
    public ModelRegistry(ModelSpec spec, ParameterSet? initial = null, string? origin = null, TimeProvider? time = null)
    {
        Spec = spec;
        _time = time ?? TimeProvider.System;
        using var module = new ScoringModule(spec);
        if (initial is not null)
        {
            // Checked against the module: every parameter present with its shape.
            module.Import(initial);
        }
        Imported = initial is not null;
        Origin = origin ?? (initial is null ? $"seeded weights (seed {spec.Seed})" : "given weights");
        var parameters = module.Export();
        _current = new ModelSnapshot(spec, parameters, version: 1);
        _lastVersion = 1;
        Record(new ModelVersion(1, ModelVersion.ContentId(spec.Kind, parameters), 0, _time.GetUtcNow(), Imported ? ModelOrigin.Imported : ModelOrigin.Seeded, Origin), parameters);
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

    /// <summary>A lease on the candidate and how it serves, or false when there is none.</summary>
    public bool TryAcquireCandidate(out ModelLease lease, out CandidateInfo info)
    {
        while (true)
        {
            var candidate = Volatile.Read(ref _candidate);
            if (candidate is null)
            {
                lease = default;
                info = null!;
                return false;
            }
            if (candidate.Snapshot.TryAcquire())
            {
                lease = new ModelLease(candidate.Snapshot);
                info = candidate.Info;
                return true;
            }
        }
    }

    /// <summary>The candidate now, or null.</summary>
    public CandidateInfo? Candidate => Volatile.Read(ref _candidate)?.Info;

    /// <summary>The current version and its parameters, read together.</summary>
    public (long Version, ParameterSet Parameters) Current()
    {
        var snapshot = Volatile.Read(ref _current);
        return (snapshot.Version, snapshot.Parameters);
    }

    /// <summary>The current parameters (a copy).</summary>
    public ParameterSet CurrentParameters() => Volatile.Read(ref _current).Parameters;

    /// <summary>Publishes new parameters as the next version and returns it.</summary>
    public long Publish(ParameterSet parameters, ModelOrigin origin = ModelOrigin.Online, string? note = null)
    {
        long version;
        lock (_publishGate)
        {
            version = Swap(parameters, origin, note ?? Describe(origin));
        }
        Published?.Invoke(version);
        return version;
    }

    /// <summary>
    /// Registers <paramref name="parameters"/> as the candidate (replacing any other) under the next version number;
    /// it serves as <paramref name="mode"/> says until promoted or withdrawn.
    /// </summary>
    public CandidateInfo SetCandidate(ParameterSet parameters, CandidateMode mode, double canaryShare, bool autoPromote, string note, string? learner = null)
    {
        // The module is built outside the gate (scoring never waits for it); numbered once the version is known.
        var snapshot = new ModelSnapshot(Spec, parameters, 0);
        lock (_publishGate)
        {
            long version = ++_lastVersion;
            snapshot.Number(version);
            var record = new ModelVersion(version, ModelVersion.ContentId(Spec.Kind, parameters), Volatile.Read(ref _current).Version, _time.GetUtcNow(), ModelOrigin.Imported, note);
            Record(record, parameters);
            var info = new CandidateInfo(record, mode, canaryShare, autoPromote, ++_candidacies, learner);
            var previous = Interlocked.Exchange(ref _candidate, new Candidacy(snapshot, info));
            previous?.Snapshot.Release();
            Prune();
            return info;
        }
    }

    /// <summary>
    /// A candidate that learns publishes its newest weights: the candidate of registration <paramref name="candidacy"/>
    /// serves them from now on, under the next version (made from its previous one). False when that registration is
    /// no longer the candidate.
    /// </summary>
    public bool UpdateCandidate(long candidacy, ParameterSet parameters)
    {
        var snapshot = new ModelSnapshot(Spec, parameters, 0);
        lock (_publishGate)
        {
            if (_candidate is not { } current || current.Info.Candidacy != candidacy)
            {
                snapshot.Release();
                return false;
            }
            long version = ++_lastVersion;
            snapshot.Number(version);
            var record = new ModelVersion(version, ModelVersion.ContentId(Spec.Kind, parameters), current.Info.Version.Version, _time.GetUtcNow(), ModelOrigin.Online,
                $"the candidate learner ({current.Info.Learner})");
            Record(record, parameters);
            Interlocked.Exchange(ref _candidate, new Candidacy(snapshot, current.Info with { Version = record }));
            current.Snapshot.Release();
            Prune();
            return true;
        }
    }

    /// <summary>Withdraws the candidate (never served as the model); returns it, or null when there was none.</summary>
    public CandidateInfo? WithdrawCandidate()
    {
        lock (_publishGate)
        {
            var previous = Interlocked.Exchange(ref _candidate, null);
            previous?.Snapshot.Release();
            Prune();
            return previous?.Info;
        }
    }

    /// <summary>Makes the candidate the serving model (a new version, made from it); null when there is no candidate.</summary>
    public (ModelVersion Promoted, ParameterSet Parameters)? Promote(string note)
    {
        long version;
        ParameterSet parameters;
        lock (_publishGate)
        {
            if (Interlocked.Exchange(ref _candidate, null) is not { } candidate)
            {
                return null;
            }
            parameters = candidate.Snapshot.Parameters;
            version = Swap(parameters, ModelOrigin.Promoted, note);
            candidate.Snapshot.Release();
            Prune();
        }
        Published?.Invoke(version);
        return (Find(version)!, parameters);
    }

    /// <summary>The weights of <paramref name="version"/> if the registry kept them.</summary>
    public ParameterSet? Parameters(long version)
    {
        lock (_publishGate)
        {
            return _retained.GetValueOrDefault(version);
        }
    }

    /// <summary>
    /// A lease on a snapshot of its own of <paramref name="version"/>'s kept weights (to score with a version that no
    /// longer serves, e.g. a guard's baseline), or null when they are not kept. Disposing the lease frees it.
    /// </summary>
    public ModelLease? Freeze(long version)
    {
        var parameters = Parameters(version);
        return parameters is null ? null : new ModelLease(new ModelSnapshot(Spec, parameters, version));
    }

    /// <summary>Keeps the weights of <paramref name="version"/> while it is pinned (a guard's baseline); 0 pins none.</summary>
    public void Pin(long version)
    {
        lock (_publishGate)
        {
            _pinned = version;
            Prune();
        }
    }

    /// <summary>The record of <paramref name="version"/>, or null when it is not (or no longer) in the history.</summary>
    public ModelVersion? Find(long version)
    {
        lock (_publishGate)
        {
            foreach (var record in _history)
            {
                if (record.Version == version)
                {
                    return record;
                }
            }
            return null;
        }
    }

    /// <summary>The recorded versions, newest first.</summary>
    public IReadOnlyList<ModelVersion> History()
    {
        lock (_publishGate)
        {
            return [.. _history.Reverse()];
        }
    }

    /// <summary>
    /// Takes up a lineage recorded before a restart (a checkpoint's): its records come first and version numbers
    /// continue after the newest of them. Call before the restored weights are published.
    /// </summary>
    public void Restore(IReadOnlyList<ModelVersion> lineage)
    {
        lock (_publishGate)
        {
            var mine = _history.ToList();
            _history.Clear();
            foreach (var record in lineage.OrderBy(r => r.Version))
            {
                _history.AddLast(record);
            }
            _lastVersion = Math.Max(_lastVersion, lineage.Count == 0 ? 0 : lineage.Max(r => r.Version));
            _restoredParent = lineage.Count == 0 ? 0 : lineage.Max(r => r.Version);
            foreach (var record in mine.Where(r => r.Version > _lastVersion))
            {
                _history.AddLast(record);
            }
            // Weights kept under numbers the restored lineage reuses belong to this start, not to its records.
            foreach (long version in _retained.Keys.Where(v => v <= _lastVersion).ToList())
            {
                _retained.Remove(version);
            }
            while (_history.Count > HistoryLimit)
            {
                _history.RemoveFirst();
            }
        }
    }

    private long Swap(ParameterSet parameters, ModelOrigin origin, string note)
    {
        var previous = Volatile.Read(ref _current);
        long version = ++_lastVersion;
        var next = new ModelSnapshot(Spec, parameters, version);
        long parent = _restoredParent != 0 ? _restoredParent : previous.Version;
        _restoredParent = 0;
        Record(new ModelVersion(version, ModelVersion.ContentId(Spec.Kind, parameters), parent, _time.GetUtcNow(), origin, note), parameters);
        Interlocked.Exchange(ref _current, next);
        previous.Release();
        Prune();
        return version;
    }

    private void Record(ModelVersion record, ParameterSet parameters)
    {
        _history.AddLast(record);
        while (_history.Count > HistoryLimit)
        {
            _history.RemoveFirst();
        }
        _retained[record.Version] = parameters;
    }

    /// <summary>Keeps the weights of the serving version, the pinned one, the candidate and the newest milestones.</summary>
    private void Prune()
    {
        var keep = new HashSet<long> { Volatile.Read(ref _current).Version, _pinned };
        if (_candidate is { } candidate)
        {
            keep.Add(candidate.Info.Version.Version);
        }
        foreach (var record in _history.Reverse().Where(r => r.Origin != ModelOrigin.Online && r.Origin != ModelOrigin.Pool).Take(RetainedMilestones))
        {
            keep.Add(record.Version);
        }
        foreach (long version in _retained.Keys.Where(v => !keep.Contains(v)).ToList())
        {
            _retained.Remove(version);
        }
    }

    private static string Describe(ModelOrigin origin) => origin switch
    {
        ModelOrigin.Online => "online learning",
        ModelOrigin.Pool => "the parameter server's merged weights",
        ModelOrigin.Restored => "a checkpoint's weights",
        _ => origin.ToString(),
    };

    public void Dispose()
    {
        lock (_publishGate)
        {
            Interlocked.Exchange(ref _candidate, null)?.Snapshot.Release();
        }
        Interlocked.Exchange(ref _current, null!)?.Release();
    }

    private sealed record Candidacy(ModelSnapshot Snapshot, CandidateInfo Info);
}
