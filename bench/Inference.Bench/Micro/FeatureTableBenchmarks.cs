using BenchmarkDotNet.Attributes;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Bench.Micro;

/// <summary>
/// Applying one 8,192-event batch of the engine's default features on the CPU accelerator, next to a plain
/// C# loop: a live batch (8 s of event time), and a backlog batch spanning 14 minutes, more than the
/// windows' lateness, which takes the per-event lateness path (each event's entity's newest earlier time).
/// </summary>
[MemoryDiagnoser]
public class FeatureTableBenchmarks
{
    private const int Events = 8192;
    private const int Entities = 100_000;
    private DeviceContext _device = null!;
    private FeatureTable _table = null!;
    private ulong[] _keys = null!;
    private long[] _times = null!;
    private long[] _spanning = null!;
    private float[] _values = null!;
    private Dictionary<ulong, int> _slots = null!;
    private double[] _count = null!;
    private double[] _sum = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = DeviceContext.Create(AcceleratorKind.Cpu);
        _table = new FeatureTable(_device, new FeaturePlan(Engine.Features.FeatureOptions.DefaultDefinitions()),
            new FeatureTableOptions { InitialCapacity = Entities, MaxCapacity = Entities, MaxBatchEvents = Events });
        var random = new Random(1);
        _keys = [.. Enumerable.Range(0, Events).Select(_ => (ulong)random.Next(Entities) + 1)];
        _times = [.. Enumerable.Range(0, Events).Select(i => 1_000_000L + i)];
        _spanning = [.. Enumerable.Range(0, Events).Select(i => 1_000_000L + (i * 100L))];
        _values = [.. Enumerable.Range(0, Events).Select(_ => (float)random.NextDouble())];
        _slots = new Dictionary<ulong, int>(Entities);
        _count = new double[Entities];
        _sum = new double[Entities];
    }

    [Benchmark(Baseline = true)]
    public void ReferenceLoop()
    {
        for (int i = 0; i < Events; i++)
        {
            if (!_slots.TryGetValue(_keys[i], out int slot))
            {
                slot = _slots.Count;
                _slots.Add(_keys[i], slot);
            }
            _count[slot]++;
            _sum[slot] += _values[i];
        }
    }

    [Benchmark]
    public ApplyResult KernelApply() => _table.Apply(new ArrayBatch(_keys, _times, [_values], []));

    [Benchmark]
    public ApplyResult KernelApplyBacklog() => _table.Apply(new ArrayBatch(_keys, _spanning, [_values], []));

    private FeatureTable? _cold;
    private ulong[][] _coldKeys = null!;
    private long[] _coldTimes = null!;
    private int _coldNext;

    /// <summary>
    /// A table sized as serve's (262,144 slots) whose 100k entities' rows do not fit the cache: each call applies
    /// the next of 256 batches of random entities, times moving forward, so the rows it touches are cold.
    /// </summary>
    [GlobalSetup(Target = nameof(KernelApplyColdRows))]
    public void SetupCold()
    {
        Setup();
        _cold = new FeatureTable(_device, new FeaturePlan(Engine.Features.FeatureOptions.DefaultDefinitions()),
            new FeatureTableOptions { InitialCapacity = 262_144, MaxCapacity = 1_000_000, MaxBatchEvents = Events });
        var random = new Random(2);
        _coldKeys = [.. Enumerable.Range(0, 256).Select(_ => Enumerable.Range(0, Events).Select(_ => (ulong)random.Next(Entities) + 1).ToArray())];
        _coldTimes = [.. Enumerable.Range(0, Events).Select(i => 1_000_000L + i)];
        for (int b = 0; b < 16; b++)
        {
            KernelApplyColdRows();
        }
    }

    [Benchmark]
    public ApplyResult KernelApplyColdRows()
    {
        // Times only move forward, a millisecond per event, batch after batch.
        for (int i = 0; i < Events; i++)
        {
            _coldTimes[i] += Events;
        }
        return _cold!.Apply(new ArrayBatch(_coldKeys[_coldNext++ % _coldKeys.Length], _coldTimes, [_values], []));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cold?.Dispose();
        _table.Dispose();
        _device.Dispose();
    }
}
