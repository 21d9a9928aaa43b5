using System.Globalization;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Testing;
using Inference.KernelCheck;

// The feature kernels on every accelerator present (the CPU backend always, CUDA when found): the randomised
// self-check against the oracle, then apply throughput next to a plain C# reference on one thread,
// gather throughput, and device copy bandwidth (the peak the kernels are compared with). Apply rates
// and their reference are timed in alternating turns (median of five) so both see the same machine.
// The markdown table comes last. `--help` for the options.
var quickOption = new System.CommandLine.Option<bool>("--quick") { Description = "Smaller sizes, for a smoke run" };
var command = new System.CommandLine.RootCommand("The feature kernels on every accelerator present: self-check against the oracle, apply and gather throughput, copy bandwidth.") { quickOption };
var parsed = command.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine($"Inference.KernelCheck: {error.Message}");
    }
    return 2;
}
if (parsed.Action is System.CommandLine.Help.HelpAction)
{
    return parsed.Invoke();
}
bool quick = parsed.GetValue(quickOption);
int entities = quick ? 100_000 : 1_000_000;
int batch = quick ? 16_384 : 65_536;
var kinds = new List<AcceleratorKind> { AcceleratorKind.Cpu };
if (DeviceContext.CudaAvailable())
{
    kinds.Add(AcceleratorKind.Cuda);
}

var rows = new List<string>();
bool allPassed = true;
foreach (var kind in kinds)
{
    using var device = DeviceContext.Create(kind);
    string name = device.Description;
    Console.Error.WriteLine($"Accelerator: {name}");
    foreach (var (seed, maxCapacity) in new[] { (101, 1_000), (202, 128) })
    {
        var report = FeatureSelfCheck.Run(device, seed, entities: maxCapacity < 400 ? 400 : 300, initialCapacity: 32, maxCapacity, batches: 40);
        allPassed &= report.Passed;
        string detail = report.Passed
            ? $"seed {seed}: {report.Events:N0} events, {report.Entities} entities, {report.Growths} growths, {report.Evicted} evicted, {report.Late.Sum()} late"
            : string.Join("; ", report.Mismatches.Take(3));
        rows.Add($"| {name} | self-check vs oracle, all 14 aggregations | {(report.Passed ? "pass" : "FAIL")} | {detail} |");
    }
    {
        // Copies between the device and managed arrays the GC moves: the same check as the kernel tests.
        var torn = TransferSelfCheck.Run(device, reads: 250);
        allPassed &= torn.Count == 0;
        rows.Add($"| {name} | reads into fresh arrays while the GC compacts | {(torn.Count == 0 ? "pass" : "FAIL")} | {(torn.Count == 0 ? "250 gathers, every value whole" : string.Join("; ", torn.Take(3)))} |");
    }
    double peak = Bench.CopyBandwidth(device, quick ? 64 << 20 : 256 << 20);
    rows.Add(Invariant($"| {name} | device copy bandwidth (read + write) | {peak / 1e9:F1} GB/s | the peak for the rows below |"));
    double applySeconds = quick ? 2 : 5;
    foreach (int fields in new[] { 1, 8, 32 })
    {
        // The C# reference on one thread and the kernels, filled alike, timed in alternating turns.
        using var reference = new ReferenceApply(entities, fields, batch);
        using var kernels = new KernelApply(device, entities, fields, batch);
        var (baseline, rate) = Bench.Interleaved(reference, kernels, applySeconds);
        long bytes = Bench.BytesPerEvent(fields);
        rows.Add(Invariant($"| C# reference, one thread | apply, {entities:N0} entities, {fields} features | {baseline:N0} events/s | baseline, timed in turns with the row below; {Bench.Plan(fields).BytesPerEntity} B state per entity |"));
        rows.Add(Invariant($"| {name} | apply, {entities:N0} entities, {fields} features | {rate:N0} events/s | {rate / baseline:F2}× reference; ~{bytes} B moved per event, {rate * bytes / 1e9:F2} GB/s = {100 * rate * bytes / peak:F1}% of copy bandwidth |"));
    }
    {
        // Every event of a batch on 64 entities: the atomics of one slot contend, the worst case.
        using var spreadRun = new KernelApply(device, entities, 8, batch);
        using var hotRun = new KernelApply(device, entities, 8, batch, hotEntities: 64);
        var (spread, hot) = Bench.Interleaved(spreadRun, hotRun, applySeconds);
        rows.Add(Invariant($"| {name} | apply, 8 features, every event on 64 entities | {hot:N0} events/s | {hot / spread:F2}× the same batch spread over {entities:N0} entities (contended atomics) |"));
    }
    {
        // What ingest does: upload a micro-batch from host memory, then apply it; registered
        // (page-locked) host memory against plain pageable memory, in alternating turns.
        using var pageable = new HostBatchApply(device, entities, 8, batch, pageLocked: false);
        using var locked = new HostBatchApply(device, entities, 8, batch, pageLocked: true);
        var (plain, registered) = Bench.Interleaved(pageable, locked, applySeconds);
        rows.Add(Invariant($"| {name} | upload + apply from page-locked host memory, 8 features | {registered:N0} events/s | {registered / plain:F2}× the same batches from pageable host memory{(device.IsCuda ? "" : " (the CPU backend registers nothing: both read host memory)")} |"));
    }
    {
        // Checkpoints: state copied to the host, restored here and on the CPU backend, then applied on.
        var (mismatches, held) = SnapshotSelfCheck.Run(device, seed: 303);
        allPassed &= mismatches.Count == 0;
        rows.Add($"| {name} | snapshot → restore (same accelerator and CPU backend; two of six partitions dropped and taken back), then apply on | {(mismatches.Count == 0 ? "pass" : "FAIL")} | {(mismatches.Count == 0 ? $"{held} entities, all 14 aggregations, read before and after 20 more batches" : string.Join("; ", mismatches.Take(3)))} |");
        var (copy, restore, bytes) = SnapshotTiming.Measure(device, entities, 8);
        rows.Add(Invariant($"| {name} | snapshot of {entities:N0} entities, 8 features (the checkpoint pause) | {1e3 * copy:F1} ms | {bytes / 1e6:F0} MB to host, {bytes / copy / 1e9:F2} GB/s; restore (upload + hash rebuild) {1e3 * restore:F1} ms |"));
    }
    foreach (var optimizer in new[] { SparseOptimizerKind.Adagrad, SparseOptimizerKind.Ftrl })
    {
        // Embedding tables: the kernel tests' randomised check against a plain dictionary.
        var report = EmbeddingSelfCheck.Run(device, seed: 41, optimizer);
        allPassed &= report.Passed;
        rows.Add($"| {name} | embedding table vs dictionary, {optimizer} | {(report.Passed ? "pass" : "FAIL")} | {(report.Passed ? $"{report.Batches} calls, {report.Growths} growths, {report.Forgotten} forgotten, {report.Restores} restores" : string.Join("; ", report.Mismatches.Take(3)))} |");
    }
    {
        var (gather, step) = EmbeddingThroughput.Measure(device, quick ? 100_000 : 1_000_000, dimension: 16, batch: 4_096, seconds: quick ? 0.5 : 2);
        rows.Add(Invariant($"| {name} | embedding gather, 4,096 ids of {(quick ? 100_000 : 1_000_000):N0}, dimension 16 | {gather:N0} rows/s | Touch (find, count, date) + gather |"));
        rows.Add(Invariant($"| {name} | embedding Adagrad step, 4,096 rows, dimension 16 | {step:N0} rows/s | gradients summed per row, one step per touched row |"));
    }
    foreach (int size in new[] { 1, 64, 1024 })
    {
        double rate = Bench.GatherRate(device, entities, size, seconds: quick ? 0.5 : 1);
        rows.Add(Invariant($"| {name} | gather, batch {size}, 8 features | {rate:N0} rows/s | {1e6 * size / rate:F2} µs per gather; {entities:N0} entities held |"));
    }
}

Console.WriteLine("| accelerator | check | result | notes |");
Console.WriteLine("|---|---|---:|---|");
rows.ForEach(Console.WriteLine);
return allPassed ? 0 : 1;

static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
