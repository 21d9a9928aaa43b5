using BenchmarkDotNet.Attributes;
using Inference.Kernels.Accelerators;
using Inference.Kernels.State;

namespace Inference.Bench.Micro;

/// <summary>Applying one 8192-event batch on the CPU accelerator next to the plain C# loop over the same events.</summary>
[MemoryDiagnoser]
public class StateTableBenchmarks
{
    private const int Events = 8192;
    private const int Entities = 100_000;
    private DeviceContext _device = null!;
    private StateTable _table = null!;
    private int[] _slots = null!;
    private long[] _times = null!;
    private float[] _values = null!;
    private int[] _touched = null!;
    private long[] _count = null!;
    private double[] _sum = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = DeviceContext.Create(AcceleratorKind.Cpu);
        _table = new StateTable(_device, Entities, fieldCount: 1, halfLifeMs: 60_000, maxBatchEvents: Events);
        var random = new Random(1);
        _slots = [.. Enumerable.Range(0, Events).Select(_ => random.Next(Entities))];
        _times = [.. Enumerable.Range(0, Events).Select(i => 1_000_000L + i)];
        _values = [.. Enumerable.Range(0, Events).Select(_ => (float)random.NextDouble())];
        _touched = [.. _slots.Distinct()];
        _count = new long[Entities];
        _sum = new double[Entities];
    }

    [Benchmark(Baseline = true)]
    public void ReferenceLoop()
    {
        for (int i = 0; i < Events; i++)
        {
            _count[_slots[i]]++;
            _sum[_slots[i]] += _values[i];
        }
    }

    [Benchmark]
    public void KernelApply() => _table.Apply(_slots, _times, _values, _touched);

    [GlobalCleanup]
    public void Cleanup()
    {
        _table.Dispose();
        _device.Dispose();
    }
}
