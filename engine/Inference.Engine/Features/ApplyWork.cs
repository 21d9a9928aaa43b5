using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// One apply handed to the <see cref="DeviceExecutor"/>: the batch's columns and the offsets its
/// events came from. Reusable: an ingest thread keeps two and alternates (decode one while the
/// device applies the other), so the steady state allocates nothing per batch for the handoff.
/// </summary>
internal abstract class ApplyWork
{
    private readonly BlockingResult<int> _applied = new(idle: true);
    private PartitionOffset[] _offsets = new PartitionOffset[16];
    private int _offsetCount;

    /// <summary>True when no apply of this work is queued or running.</summary>
    public bool IsIdle => _applied.IsSet;

    /// <summary>The offsets the watermark advances to once this batch is applied.</summary>
    public ReadOnlySpan<PartitionOffset> Offsets => _offsets.AsSpan(0, _offsetCount);

    /// <summary>Sets the offsets (copied); only while idle.</summary>
    public void SetOffsets(ReadOnlySpan<PartitionOffset> offsets)
    {
        if (offsets.Length > _offsets.Length)
        {
            _offsets = new PartitionOffset[Math.Max(offsets.Length, _offsets.Length * 2)];
        }
        offsets.CopyTo(_offsets);
        _offsetCount = offsets.Length;
    }

    /// <summary>Waits for the device to finish this batch; returns the events applied or rethrows the apply's failure.</summary>
    public int Wait()
    {
        try
        {
            return _applied.Wait();
        }
        catch (Exception error)
        {
            throw new InvalidOperationException("Applying a micro-batch failed.", error);
        }
    }

    internal void Begin()
    {
        if (!_applied.IsSet)
        {
            throw new InvalidOperationException("This apply is already queued.");
        }
        _applied.Reset();
    }

    internal void Complete(int applied) => _applied.Complete(applied);

    internal void Fail(Exception error) => _applied.Fail(error);

    /// <summary>Applies the batch to the table (on the executor thread).</summary>
    protected internal abstract ApplyResult Apply(FeatureTable table);

    /// <summary>
    /// Runs on the executor right after the apply, before any other work, with the state the batch
    /// was applied to; <paramref name="watermark"/> gives that state's exact watermark.
    /// </summary>
    protected internal virtual void AfterApply(FeatureTable table, Func<FeatureWatermark> watermark)
    {
    }

    /// <summary>Journals the batch the table applied (on the executor thread), for point-in-time reads.</summary>
    protected internal abstract void Journal(EventJournal journal);
}

/// <summary>A read-your-writes caller waiting for the watermark to cover its minimum.</summary>
internal sealed class WatermarkWaiter
{
    private readonly IReadOnlyList<PartitionOffset> _minimum;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenRegistration _registration;

    public WatermarkWaiter(IReadOnlyList<PartitionOffset> minimum, CancellationToken cancellation)
    {
        _minimum = minimum;
        _registration = cancellation.Register(static state => ((WatermarkWaiter)state!)._completion.TrySetCanceled(), this);
    }

    public Task Task => _completion.Task;

    public IReadOnlyList<PartitionOffset> Minimum => _minimum;

    public bool Completed => _completion.Task.IsCompleted;

    /// <summary>Releases the caller now that the state covers its minimum; a cancelled one is just let go.</summary>
    public void Release()
    {
        _registration.Dispose();
        _completion.TrySetResult();
    }

    public void Stop()
    {
        _registration.Dispose();
        _completion.TrySetException(new OperationCanceledException("The engine is stopping."));
    }
}
