using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Checkpoints;

/// <summary>The checkpoints' instruments: how many, how long the state copy paused the executor, how long writing took, how big.</summary>
internal sealed class CheckpointMetrics
{
    private readonly TotalCounter _written;
    private readonly TotalCounter _failed;
    private readonly Histogram<double> _pause;
    private readonly Histogram<double> _write;
    private readonly TimeProvider _time;
    private long _bytes;
    private long _writtenAt;

    public CheckpointMetrics(IMeterFactory meterFactory, TimeProvider time)
    {
        _time = time;
        var meter = meterFactory.Create(EngineMeter.Name);
        _written = new(meter, "inference.checkpoint.written", "{checkpoint}", "Checkpoints written durably.");
        _failed = new(meter, "inference.checkpoint.failed", "{checkpoint}", "Checkpoints that failed or were skipped.");
        _pause = meter.CreateHistogram<double>("inference.checkpoint.pause", "s", "Time the device executor spent copying the state for a checkpoint (applies and reads wait meanwhile).", advice: EngineMeter.Seconds);
        _write = meter.CreateHistogram<double>("inference.checkpoint.write.duration", "s", "Time to write a checkpoint durably (off the executor).", advice: EngineMeter.Seconds);
        meter.CreateObservableGauge("inference.checkpoint.size", () => Interlocked.Read(ref _bytes), "By", "Bytes of the newest checkpoint.");
        meter.CreateObservableGauge("inference.checkpoint.age", Age, "s", "Time since the newest durable checkpoint of this process.");
    }

    public long Written => _written.Total;

    public long Failed => _failed.Total;

    /// <summary>The executor just spent <paramref name="seconds"/> copying the state.</summary>
    public void Paused(double seconds) => _pause.Record(seconds);

    public void Checkpointed(double writeSeconds, long bytes)
    {
        _written.Add(1);
        _write.Record(writeSeconds);
        Interlocked.Exchange(ref _bytes, bytes);
        Interlocked.Exchange(ref _writtenAt, _time.GetTimestamp());
    }

    private IEnumerable<Measurement<double>> Age()
    {
        long at = Interlocked.Read(ref _writtenAt);
        if (at != 0)
        {
            yield return new Measurement<double>(_time.GetElapsedTime(at).TotalSeconds);
        }
    }

    public void Failure() => _failed.Add(1);
}
