namespace Inference.Engine.Training;

/// <summary>What became of a label naming a request id.</summary>
internal enum LabelJoin
{
    /// <summary>The request was in the log: the label learns from what was served.</summary>
    Joined,

    /// <summary>The label names no request: it learns from its entity's state at its event time.</summary>
    FellBack,

    /// <summary>The request is not (or no longer) in the log: past <c>MaxLabelDelayMs</c>, overwritten, served before a restart or by another node. Learns as <see cref="FellBack"/>.</summary>
    TooLate,

    /// <summary>A label for the request was learned already: this one is set aside.</summary>
    Duplicate,
}

/// <summary>
/// The feature log: what <c>Score</c> served under each request id (the model inputs, the ids of a model over ids,
/// the score and model version), kept in memory in a ring of at most <c>Inference:Training:FeatureLogCapacity</c>
/// rows for <c>Inference:Training:MaxLabelDelayMs</c>, so that a label naming its request learns from exactly what
/// the model saw, not from its entity's state when the label arrives (training/serving skew). Written on the
/// device executor's thread, read on the trainer's. Request ids are kept as their 64-bit hash (the entity keys'),
/// like ids: two distinct request ids among a million share one with a chance of about 3·10^-8.
/// </summary>
internal sealed class FeatureLog
{
    /// <summary>A mini-batch as the trainer learns it: per label its request id's hash (0: none) and its model inputs (<see cref="Width"/> each).</summary>
    public delegate void LearnedBatch(ReadOnlySpan<ulong> requests, ReadOnlySpan<float> inputs);

    /// <summary>A row the log took, for a copy kept elsewhere (<see cref="FeatureLogTopic"/>).</summary>
    public delegate void PersistRow(ulong request, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, float score, long version, long servedMs);

    private const int InitialRows = 4_096;

    private readonly object _gate = new();
    private readonly Dictionary<ulong, int> _index = [];
    private readonly TimeProvider _time;
    private readonly int _capacity;
    private readonly long _maxAgeMs;
    private ulong[] _keys = [];
    private float[] _inputs = [];
    private ulong[] _ids = [];
    private long[] _servedMs = [];
    private long[] _versions = [];
    private float[] _scores = [];
    private float[] _shadowScores = [];
    private long[] _shadowVersions = [];
    private bool[] _learned = [];
    private int _next;

    /// <param name="width">Model inputs per row (features, then request features).</param>
    /// <param name="idInputs">Ids per row (a model over ids), else 0.</param>
    /// <param name="capacity">Rows at most: beyond it the oldest are forgotten.</param>
    /// <param name="maxAgeMs">How long after it was served a row may still be joined.</param>
    /// <param name="time">The clock rows are dated by.</param>
    public FeatureLog(int width, int idInputs, int capacity, long maxAgeMs, TimeProvider time)
    {
        Width = width;
        IdInputs = idInputs;
        _capacity = capacity;
        _maxAgeMs = maxAgeMs;
        _time = time;
    }

    public int Width { get; }

    /// <summary>Diagnostics: called on the trainer's thread with each mini-batch it learns, before its step (what each label learned from).</summary>
    public LearnedBatch? Learned { get; set; }

    public int IdInputs { get; }

    /// <summary>Called with every row the log takes, after it took it (set before rows are served).</summary>
    public PersistRow? Persist { get; set; }

    /// <summary>Rows held now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _index.Count;
            }
        }
    }

    /// <summary>
    /// Logs the served rows that name a request (<paramref name="requests"/>: the request id's hash, 0 for none): their
    /// model inputs (<see cref="Width"/> per row), ids (<see cref="IdInputs"/> per row), scores and the version that
    /// scored them. A request id served again replaces what it held; the oldest rows make room for new ones.
    /// </summary>
    public void Served(ReadOnlySpan<ulong> requests, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, ReadOnlySpan<float> scores, long version)
    {
        Span<long> versions = requests.Length <= 256 ? stackalloc long[requests.Length] : new long[requests.Length];
        versions.Fill(version);
        Served(requests, inputs, ids, scores, versions);
    }

    /// <summary>As <see cref="Served(ReadOnlySpan{ulong}, ReadOnlySpan{float}, ReadOnlySpan{ulong}, ReadOnlySpan{float}, long)"/>, with the version that answered each row (a canary answers some).</summary>
    public void Served(ReadOnlySpan<ulong> requests, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, ReadOnlySpan<float> scores, ReadOnlySpan<long> versions)
    {
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_gate)
        {
            for (int r = 0; r < requests.Length; r++)
            {
                if (requests[r] != 0)
                {
                    Take(requests[r], inputs.Slice(r * Width, Width), IdInputs == 0 ? [] : ids.Slice(r * IdInputs, IdInputs), scores[r], versions[r], now);
                }
            }
        }
        if (Persist is { } persist)
        {
            for (int r = 0; r < requests.Length; r++)
            {
                if (requests[r] != 0)
                {
                    persist(requests[r], inputs.Slice(r * Width, Width), IdInputs == 0 ? [] : ids.Slice(r * IdInputs, IdInputs), scores[r], versions[r], now);
                }
            }
        }
    }

    /// <summary>
    /// Takes back a row served before a restart (read from <see cref="FeatureLogTopic"/>) unless it is older than the
    /// label delay or the log holds a newer one of the request; returns whether it took it.
    /// </summary>
    public bool Restore(ulong request, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, float score, long version, long servedMs)
    {
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_gate)
        {
            if (request == 0 || now - servedMs > _maxAgeMs || (_index.TryGetValue(request, out int held) && _servedMs[held] >= servedMs))
            {
                return false;
            }
            Take(request, inputs, ids, score, version, servedMs);
            return true;
        }
    }

    /// <summary>Under the gate: one row into the next slot, not yet learned, without a shadow score.</summary>
    private void Take(ulong request, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, float score, long version, long servedMs)
    {
        int slot = NextSlot();
        _keys[slot] = request;
        inputs.CopyTo(_inputs.AsSpan(slot * Width, Width));
        ids.CopyTo(_ids.AsSpan(slot * IdInputs, IdInputs));
        _servedMs[slot] = servedMs;
        _versions[slot] = version;
        _scores[slot] = score;
        _shadowVersions[slot] = 0;
        _learned[slot] = false;
        _index[request] = slot;
    }

    /// <summary>
    /// Joins a label naming request <paramref name="request"/> (its hash): when the log holds it and no label of it was
    /// learned yet, writes what was served into <paramref name="inputs"/> and <paramref name="ids"/> and marks it learned.
    /// </summary>
    public LabelJoin Join(ulong request, Span<float> inputs, Span<ulong> ids)
    {
        if (request == 0)
        {
            return LabelJoin.FellBack;
        }
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_gate)
        {
            if (!_index.TryGetValue(request, out int slot) || now - _servedMs[slot] > _maxAgeMs)
            {
                return LabelJoin.TooLate;
            }
            if (_learned[slot])
            {
                return LabelJoin.Duplicate;
            }
            _learned[slot] = true;
            _inputs.AsSpan(slot * Width, Width).CopyTo(inputs);
            if (IdInputs > 0)
            {
                _ids.AsSpan(slot * IdInputs, IdInputs).CopyTo(ids);
            }
            return LabelJoin.Joined;
        }
    }

    /// <summary>Logs a shadow candidate's scores beside what was served for the rows that name a request (0: none).</summary>
    public void Shadowed(ReadOnlySpan<ulong> requests, ReadOnlySpan<float> scores, long version)
    {
        lock (_gate)
        {
            for (int r = 0; r < requests.Length; r++)
            {
                if (requests[r] != 0 && _index.TryGetValue(requests[r], out int slot))
                {
                    _shadowScores[slot] = scores[r];
                    _shadowVersions[slot] = version;
                }
            }
        }
    }

    /// <summary>The shadow candidate's score for a request and its version, or null when none scored it (diagnostics and tests).</summary>
    public (float Score, long Version)? FindShadow(ulong request)
    {
        lock (_gate)
        {
            return _index.TryGetValue(request, out int slot) && _shadowVersions[slot] != 0 ? (_shadowScores[slot], _shadowVersions[slot]) : null;
        }
    }

    /// <summary>What the log holds for a request: its inputs, ids, score and version, or null (diagnostics and tests).</summary>
    public (float[] Inputs, ulong[] Ids, float Score, long Version)? Find(ulong request)
    {
        lock (_gate)
        {
            if (!_index.TryGetValue(request, out int slot))
            {
                return null;
            }
            return (_inputs.AsSpan(slot * Width, Width).ToArray(), _ids.AsSpan(slot * IdInputs, IdInputs).ToArray(), _scores[slot], _versions[slot]);
        }
    }

    /// <summary>The slot the next row goes to: a free one while the ring grows, then the oldest (forgotten first).</summary>
    private int NextSlot()
    {
        if (_next == _keys.Length && _keys.Length < _capacity)
        {
            Grow(Math.Min(_capacity, Math.Max(InitialRows, 2 * _keys.Length)));
        }
        if (_next == _keys.Length)
        {
            _next = 0;
        }
        int slot = _next++;
        ulong old = _keys[slot];
        if (old != 0 && _index.TryGetValue(old, out int held) && held == slot)
        {
            _index.Remove(old);
        }
        return slot;
    }

    private void Grow(int rows)
    {
        Array.Resize(ref _keys, rows);
        Array.Resize(ref _inputs, rows * Width);
        Array.Resize(ref _ids, rows * IdInputs);
        Array.Resize(ref _servedMs, rows);
        Array.Resize(ref _versions, rows);
        Array.Resize(ref _scores, rows);
        Array.Resize(ref _shadowScores, rows);
        Array.Resize(ref _shadowVersions, rows);
        Array.Resize(ref _learned, rows);
    }
}
