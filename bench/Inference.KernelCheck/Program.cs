using System.Diagnostics;
using System.Globalization;
using Inference.Kernels.Accelerators;
using Inference.Kernels.State;

// Runs the state-table kernels on every accelerator present (CPU always, CUDA when found): checks
// them against the oracle, then measures apply and gather throughput. Prints a markdown table last.
var kinds = new List<AcceleratorKind> { AcceleratorKind.Cpu };
using (var probe = DeviceContext.Create(AcceleratorKind.Auto))
{
    if (probe.IsCuda)
    {
        kinds.Add(AcceleratorKind.Cuda);
    }
}

var rows = new List<string>();
bool allPassed = true;
foreach (var kind in kinds)
{
    using var device = DeviceContext.Create(kind);
    Console.Error.WriteLine($"Accelerator: {device.Description}");
    var (passed, detail) = Check(device);
    allPassed &= passed;
    rows.Add($"| {device.Description} | correctness vs oracle | {(passed ? "pass" : "FAIL")} | {detail} |");
    foreach (int fields in new[] { 1, 8, 32 })
    {
        double rate = ApplyRate(device, entities: 1_000_000, fields, batch: 65_536);
        rows.Add(Invariant($"| {device.Description} | apply, 1M entities, {fields} fields | {rate:N0} events/s | batches of 65,536 |"));
    }
    foreach (int batch in new[] { 1, 64, 1024 })
    {
        double rate = GatherRate(device, entities: 1_000_000, batch);
        rows.Add(Invariant($"| {device.Description} | gather, batch {batch} | {rate:N0} rows/s | 1 field (3 columns) |"));
    }
}

Console.WriteLine("| accelerator | check | result | notes |");
Console.WriteLine("|---|---|---:|---|");
rows.ForEach(Console.WriteLine);
return allPassed ? 0 : 1;

static (bool Passed, string Detail) Check(DeviceContext device)
{
    const int seed = 7, fields = 3, entities = 500, events = 50_000, batch = 4_096;
    const double halfLife = 60_000;
    var random = new Random(seed);
    var oracle = new FeatureOracle(fields);
    using var table = new StateTable(device, entities, fields, halfLife, batch);
    var slots = new int[batch];
    var times = new long[batch];
    var values = new float[fields * batch];
    for (int start = 0; start < events; start += batch)
    {
        int n = Math.Min(batch, events - start);
        var touched = new HashSet<int>();
        for (int i = 0; i < n; i++)
        {
            slots[i] = (int)(entities * Math.Pow(random.NextDouble(), 3));
            times[i] = 1_700_000_000_000 + random.NextInt64(0, 3_600_000);
            var row = new float[fields];
            for (int f = 0; f < fields; f++)
            {
                row[f] = (float)Math.Round(random.NextDouble() * 1000, 2);
                values[f * n + i] = row[f];
            }
            oracle.Add(slots[i], times[i], row);
            touched.Add(slots[i]);
        }
        table.Apply(slots.AsSpan(0, n), times.AsSpan(0, n), values.AsSpan(0, fields * n), [.. touched]);
    }
    double worstDecayed = 0;
    foreach (int slot in oracle.Slots)
    {
        var state = table.Read(slot);
        if (state.Count != oracle.Count(slot) || state.MaxEventTimeMs != oracle.MaxTime(slot))
        {
            return (false, $"seed {seed}: slot {slot} count {state.Count} vs {oracle.Count(slot)}");
        }
        for (int f = 0; f < fields; f++)
        {
            if (state.Sums[f] != oracle.Sum(slot, f))
            {
                return (false, $"seed {seed}: slot {slot} sum {state.Sums[f]:R} vs {oracle.Sum(slot, f):R}");
            }
            double expected = oracle.DecayedSum(slot, f, halfLife);
            worstDecayed = Math.Max(worstDecayed, Math.Abs(state.DecayedSums[f] - expected) / Math.Abs(expected));
        }
    }
    return (worstDecayed <= 1e-5, Invariant($"seed {seed}, {events:N0} events: counts and sums exact, decayed sums within {worstDecayed:E1} relative"));
}

static double ApplyRate(DeviceContext device, int entities, int fields, int batch)
{
    using var table = new StateTable(device, entities, fields, 60_000, batch);
    var random = new Random(1);
    var slots = new int[batch];
    var times = new long[batch];
    var values = new float[batch * fields];
    for (int i = 0; i < batch; i++)
    {
        slots[i] = random.Next(entities);
        times[i] = 1_000_000 + i;
    }
    for (int i = 0; i < values.Length; i++)
    {
        values[i] = (float)random.NextDouble();
    }
    int[] touched = [.. slots.Distinct()];
    table.Apply(slots, times, values, touched); // warm-up (kernel compile)
    var clock = Stopwatch.StartNew();
    long applied = 0;
    while (clock.Elapsed.TotalSeconds < 2)
    {
        table.Apply(slots, times, values, touched);
        applied += batch;
    }
    return applied / clock.Elapsed.TotalSeconds;
}

static double GatherRate(DeviceContext device, int entities, int batch)
{
    using var table = new StateTable(device, entities, 1, 60_000, 1, maxGatherRows: Math.Max(batch, 1));
    var random = new Random(2);
    var slots = Enumerable.Range(0, batch).Select(_ => random.Next(entities)).ToArray();
    var output = new float[batch * table.FeatureWidth];
    table.Gather(slots, 0, output);
    var clock = Stopwatch.StartNew();
    long gathered = 0;
    while (clock.Elapsed.TotalSeconds < 1)
    {
        table.Gather(slots, 0, output);
        gathered += batch;
    }
    return gathered / clock.Elapsed.TotalSeconds;
}

static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
