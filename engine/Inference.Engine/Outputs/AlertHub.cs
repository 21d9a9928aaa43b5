namespace Inference.Engine.Outputs;

/// <summary>One committed alert as browsers receive it: a sequence number for Last-Event-ID and its JSON.</summary>
internal sealed record AlertEntry(long Sequence, string Id, string Json);

/// <summary>
/// The latest committed alerts in a bounded buffer, numbered in commit order, for Server-Sent Events
/// clients: a client that reconnects with Last-Event-ID gets what it missed while that is still held.
/// </summary>
internal sealed class AlertHub(int capacity)
{
    private readonly AlertEntry[] _buffer = new AlertEntry[Math.Max(1, capacity)];
    private readonly Lock _gate = new();
    private long _next = 1;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The sequence number of the newest alert (0: none yet).</summary>
    public long Latest
    {
        get
        {
            lock (_gate)
            {
                return _next - 1;
            }
        }
    }

    public void Publish(IReadOnlyList<(string Id, string Json)> alerts)
    {
        if (alerts.Count == 0)
        {
            return;
        }
        TaskCompletionSource changed;
        lock (_gate)
        {
            foreach (var (id, json) in alerts)
            {
                long sequence = _next++;
                _buffer[sequence % _buffer.Length] = new AlertEntry(sequence, id, json);
            }
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        changed.TrySetResult();
    }

    /// <summary>
    /// The alerts after <paramref name="last"/> still held (oldest first), and a task that completes when
    /// more are published.
    /// </summary>
    public (List<AlertEntry> Entries, Task Changed) After(long last)
    {
        lock (_gate)
        {
            long oldest = Math.Max(1, _next - _buffer.Length);
            var entries = new List<AlertEntry>();
            for (long s = Math.Max(last + 1, oldest); s < _next; s++)
            {
                entries.Add(_buffer[s % _buffer.Length]);
            }
            return (entries, _changed.Task);
        }
    }
}
