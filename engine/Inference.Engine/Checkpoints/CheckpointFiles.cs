using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Apache.Arrow;
using Apache.Arrow.Compression;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Inference.Engine.Features;
using Inference.Kernels.Features;

namespace Inference.Engine.Checkpoints;

/// <summary>A checkpoint found in a directory: its path and manifest, or why it cannot be restored.</summary>
public sealed record CheckpointEntry(string Path, long Sequence, CheckpointManifest? Manifest, string? Problem);

/// <summary>
/// Checkpoints on disk. Each is a directory <c>checkpoint-NNNNNNNNNNNN</c>: the entity state as Arrow
/// IPC files compressed with LZ4 frames (one column per state word, a record batch per 64k occupied slots),
/// the trainer's state as JSON, and <c>manifest.json</c> with every file's size and SHA-256. It is
/// written into a temporary directory, each file fsynced, then renamed into place and the parent
/// directory fsynced: a checkpoint is either whole or absent, never half-written.
/// </summary>
public static partial class CheckpointFiles
{
    public const string Prefix = "checkpoint-";
    public const string ManifestName = "manifest.json";
    private const string EntitiesName = "entities.arrow";
    private const string FreeSlotsName = "free-slots.arrow";
    private const string TrainerName = "trainer.json";
    internal const string TemporaryMarker = ".tmp-";
    private const int SlotsPerBatch = 65_536;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    private static readonly CompressionCodecFactory Codecs = new();
    private static readonly IpcOptions Compressed = new() { CompressionCodec = CompressionCodecType.Lz4Frame, CompressionCodecFactory = Codecs };

    /// <summary>Writes <paramref name="checkpoint"/> as the next checkpoint in <paramref name="directory"/>, durably, and returns its entry.</summary>
    public static CheckpointEntry Write(string directory, Checkpoint checkpoint)
    {
        var (sequence, final, temporary) = Begin(directory, Prefix);
        var files = new List<CheckpointFile>();
        List<CheckpointSegment>? segments = null;
        if (checkpoint.SegmentPartitions > 0)
        {
            // One file per events partition: a worker taking partitions over reads only theirs.
            segments = [];
            foreach (var (partition, slots) in SlotsByPartition(checkpoint.Table, checkpoint.SegmentPartitions))
            {
                string name = string.Create(CultureInfo.InvariantCulture, $"entities-{partition:D5}.arrow");
                files.Add(WriteFile(temporary, name, stream => WriteEntities(stream, checkpoint.Table, slots)));
                segments.Add(new CheckpointSegment(partition, name, slots.Length));
            }
        }
        else
        {
            files.Add(WriteFile(temporary, EntitiesName, stream => WriteEntities(stream, checkpoint.Table, null)));
        }
        files.Add(WriteFile(temporary, FreeSlotsName, stream => WriteFreeSlots(stream, checkpoint.Table.FreeSlots)));
        if (checkpoint.Trainer is not null)
        {
            files.Add(WriteFile(temporary, TrainerName, stream => JsonSerializer.Serialize(stream, checkpoint.Trainer, Json)));
        }
        var table = checkpoint.Table;
        var manifest = new CheckpointManifest(
            CheckpointManifest.CurrentFormat,
            sequence,
            DateTimeOffset.UtcNow,
            checkpoint.PlanFingerprint,
            checkpoint.ModelFingerprint,
            new CheckpointTableSummary(table.Capacity, table.Entities, table.Sequence, table.PinMark,
                PerSlot(table.Longs.LongLength, table.Capacity), PerSlot(table.Doubles.LongLength, table.Capacity), PerSlot(table.Registers.LongLength, table.Capacity),
                checkpoint.SegmentPartitions, segments),
            new CheckpointEventSummary(checkpoint.Events.MaxEventTimeMs, checkpoint.Events.BatchesApplied, checkpoint.Events.Partitions),
            checkpoint.Trainer is { } trainer
                ? new CheckpointTrainerSummary(trainer.LabelsLearned, trainer.LabelsSkipped, trainer.BaseVersion, trainer.LabelOffsets)
                : null,
            files);
        WriteFile(temporary, ManifestName, stream => JsonSerializer.Serialize(stream, manifest, Json));
        Commit(directory, temporary, final);
        return new CheckpointEntry(final, sequence, manifest, null);
    }

    /// <summary>
    /// Starts the next checkpoint named <paramref name="prefix"/> in <paramref name="directory"/>: its
    /// sequence, final path, and the empty temporary directory its files are written into.
    /// </summary>
    internal static (long Sequence, string Final, string Temporary) Begin(string directory, string prefix)
    {
        Directory.CreateDirectory(directory);
        long sequence = Complete(directory, prefix).Select(c => c.Sequence).DefaultIfEmpty(0).Max() + 1;
        string final = Path.Combine(directory, prefix + sequence.ToString("D12", CultureInfo.InvariantCulture));
        string temporary = final + TemporaryMarker + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        Directory.CreateDirectory(temporary);
        return (sequence, final, temporary);
    }

    /// <summary>Makes a checkpoint whose files are all written and synced durable: renamed into place, the parent directory synced.</summary>
    internal static void Commit(string directory, string temporary, string final)
    {
        SyncDirectory(temporary);
        Directory.Move(temporary, final);
        SyncDirectory(directory);
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints, and temporary directories other processes left behind.</summary>
    public static void Prune(string directory, int keep) => Prune(directory, keep, Prefix);

    internal static void Prune(string directory, int keep, string prefix)
    {
        foreach (var (path, _) in Complete(directory, prefix).OrderByDescending(c => c.Sequence).Skip(keep))
        {
            Directory.Delete(path, recursive: true);
        }
        string mine = TemporaryMarker + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        foreach (var stale in Directory.EnumerateDirectories(directory, prefix + "*" + TemporaryMarker + "*"))
        {
            if (!stale.EndsWith(mine, StringComparison.Ordinal))
            {
                Directory.Delete(stale, recursive: true);
            }
        }
    }

    /// <summary>The complete checkpoints in <paramref name="directory"/> (newest last), each with its manifest or the reason it cannot be read.</summary>
    public static IReadOnlyList<CheckpointEntry> List(string directory)
    {
        var entries = new List<CheckpointEntry>();
        foreach (var (path, sequence) in Complete(directory, Prefix).OrderBy(c => c.Sequence))
        {
            CheckpointManifest? manifest = null;
            string? problem = null;
            try
            {
                manifest = ReadManifest(path);
            }
            catch (Exception error) when (error is IOException or JsonException or InvalidDataException or UnauthorizedAccessException)
            {
                problem = error.Message;
            }
            entries.Add(new CheckpointEntry(path, sequence, manifest, problem));
        }
        return entries;
    }

    /// <summary>The complete checkpoint directories named <paramref name="prefix"/> (temporary ones left out), manifests unread.</summary>
    internal static IEnumerable<(string Path, long Sequence)> Complete(string directory, string prefix)
    {
        if (!Directory.Exists(directory))
        {
            yield break;
        }
        foreach (var path in Directory.EnumerateDirectories(directory, prefix + "*"))
        {
            string name = Path.GetFileName(path);
            if (!name.Contains(TemporaryMarker, StringComparison.Ordinal)
                && long.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long sequence))
            {
                yield return (path, sequence);
            }
        }
    }

    /// <summary>Reads a checkpoint's manifest (no checksums verified).</summary>
    public static CheckpointManifest ReadManifest(string path)
    {
        using var stream = File.OpenRead(Path.Combine(path, ManifestName));
        var manifest = JsonSerializer.Deserialize<CheckpointManifest>(stream, Json) ?? throw new InvalidDataException("The manifest is empty.");
        if (manifest.Format != CheckpointManifest.CurrentFormat)
        {
            throw new InvalidDataException($"The manifest has format {manifest.Format}; this engine reads format {CheckpointManifest.CurrentFormat}.");
        }
        return manifest;
    }

    /// <summary>Checks every file of a checkpoint against its manifest; throws <see cref="InvalidDataException"/> naming the first that differs.</summary>
    public static CheckpointManifest Verify(string path)
    {
        var manifest = ReadManifest(path);
        VerifyFiles(path, manifest.Files);
        return manifest;
    }

    /// <summary>Checks each of <paramref name="files"/> in <paramref name="path"/>: present, of its size and SHA-256.</summary>
    internal static void VerifyFiles(string path, IEnumerable<CheckpointFile> files)
    {
        foreach (var file in files)
        {
            string full = Path.Combine(path, file.Name);
            if (!File.Exists(full))
            {
                throw new InvalidDataException($"{file.Name} is missing.");
            }
            long bytes = new FileInfo(full).Length;
            if (bytes != file.Bytes)
            {
                throw new InvalidDataException($"{file.Name} holds {bytes} bytes; the manifest says {file.Bytes}.");
            }
            using var stream = File.OpenRead(full);
            string digest = Convert.ToHexString(SHA256.HashData(stream));
            if (!string.Equals(digest, file.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"{file.Name} does not match its checksum (partial or corrupt).");
            }
        }
    }

    /// <summary>The trainer's state of a checkpoint (every file verified first); null when training was off.</summary>
    public static TrainerCheckpoint? ReadTrainer(string path)
    {
        var manifest = Verify(path);
        if (manifest.Trainer is null)
        {
            return null;
        }
        return ReadTrainerFile(path);
    }

    private static TrainerCheckpoint ReadTrainerFile(string path)
    {
        using var stream = File.OpenRead(Path.Combine(path, TrainerName));
        return JsonSerializer.Deserialize<TrainerCheckpoint>(stream, Json) ?? throw new InvalidDataException($"{TrainerName} is empty.");
    }

    /// <summary>Reads and verifies a whole checkpoint.</summary>
    public static Checkpoint Read(string path)
    {
        var manifest = Verify(path);
        var summary = manifest.Table;
        if (summary.Capacity < 0 || summary.LongsPerSlot < 0 || summary.DoublesPerSlot < 0 || summary.RegistersPerSlot < 0)
        {
            throw new InvalidDataException("The manifest's table shape is negative.");
        }
        var heads = new byte[checked(summary.Capacity * FeatureTableSnapshot.HeadWords * sizeof(long))];
        var longs = new long[checked((long)summary.Capacity * summary.LongsPerSlot)];
        var doubles = new double[checked((long)summary.Capacity * summary.DoublesPerSlot)];
        var registers = new int[checked((long)summary.Capacity * summary.RegistersPerSlot)];
        foreach (string file in EntityFiles(summary))
        {
            using var stream = File.OpenRead(Path.Combine(path, file));
            ReadEntities(stream, summary, heads, longs, doubles, registers);
        }
        int[] free;
        using (var stream = File.OpenRead(Path.Combine(path, FreeSlotsName)))
        {
            free = ReadFreeSlots(stream);
        }
        TrainerCheckpoint? trainer = null;
        if (manifest.Trainer is not null)
        {
            trainer = ReadTrainerFile(path);
        }
        var table = new FeatureTableSnapshot(manifest.PlanFingerprint, summary.Capacity, summary.Sequence, summary.PinMark, heads, longs, doubles, registers, free);
        var events = new FeatureWatermark(manifest.Events.Offsets, manifest.Events.MaxEventTimeMs, manifest.Events.BatchesApplied);
        return new Checkpoint(table, events, trainer, manifest.ModelFingerprint);
    }

    private static int PerSlot(long length, int capacity) => capacity == 0 ? 0 : checked((int)(length / capacity));

    private static IEnumerable<string> EntityFiles(CheckpointTableSummary summary) => summary.Segments?.Select(s => s.File) ?? [EntitiesName];

    /// <summary>The occupied slots of each events partition that has any, in memory order within a partition.</summary>
    private static IEnumerable<(int Partition, int[] Slots)> SlotsByPartition(FeatureTableSnapshot table, int partitions)
    {
        var buckets = new List<int>[partitions];
        var keys = MemoryMarshal.Cast<byte, ulong>(table.Heads.AsSpan());
        for (int slot = 0; slot < table.Capacity; slot++)
        {
            ulong key = keys[slot * FeatureTableSnapshot.HeadWords];
            if (key != 0)
            {
                (buckets[EntityKey.PartitionOf(key, partitions)] ??= []).Add(slot);
            }
        }
        for (int partition = 0; partition < partitions; partition++)
        {
            if (buckets[partition] is { } slots)
            {
                yield return (partition, [.. slots]);
            }
        }
    }

    /// <summary>
    /// Only the entities of <paramref name="partitions"/> from a checkpoint written one file per partition
    /// over <paramref name="partitionCount"/> partitions, reading and verifying only their files; null when
    /// the checkpoint is not written that way (read it whole instead). Every other slot is empty.
    /// </summary>
    public static Checkpoint? ReadPartitions(string path, IReadOnlySet<int> partitions, int partitionCount)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var manifest = ReadManifest(path);
        var summary = manifest.Table;
        if (summary.SegmentPartitions != partitionCount || summary.Segments is null)
        {
            return null;
        }
        var wanted = summary.Segments.Where(s => partitions.Contains(s.Partition)).ToList();
        VerifyFiles(path, manifest.Files.Where(f => wanted.Exists(s => s.File == f.Name)));
        var heads = new byte[checked(summary.Capacity * FeatureTableSnapshot.HeadWords * sizeof(long))];
        var longs = new long[checked((long)summary.Capacity * summary.LongsPerSlot)];
        var doubles = new double[checked((long)summary.Capacity * summary.DoublesPerSlot)];
        var registers = new int[checked((long)summary.Capacity * summary.RegistersPerSlot)];
        foreach (var segment in wanted)
        {
            using var stream = File.OpenRead(Path.Combine(path, segment.File));
            ReadEntities(stream, summary, heads, longs, doubles, registers);
        }
        var table = new FeatureTableSnapshot(manifest.PlanFingerprint, summary.Capacity, summary.Sequence, summary.PinMark, heads, longs, doubles, registers, []);
        return new Checkpoint(table, new FeatureWatermark(manifest.Events.Offsets, manifest.Events.MaxEventTimeMs, manifest.Events.BatchesApplied), null, manifest.ModelFingerprint, partitionCount);
    }

    internal static CheckpointFile WriteFile(string directory, string name, Action<Stream> write)
    {
        string path = Path.Combine(directory, name);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        using var hashing = new HashingStream(file);
        write(hashing);
        file.Flush(flushToDisk: true);
        return new CheckpointFile(name, file.Length, hashing.Digest());
    }

    private static Schema EntitySchema(int longs, int doubles, int registers)
    {
        var builder = new Schema.Builder();
        builder.Field(f => f.Name("slot").DataType(Int32Type.Default).Nullable(false));
        builder.Field(f => f.Name(FeatureTableSnapshot.HeadColumns[0]).DataType(UInt64Type.Default).Nullable(false));
        for (int w = 1; w < FeatureTableSnapshot.HeadColumns.Count; w++)
        {
            string name = FeatureTableSnapshot.HeadColumns[w];
            builder.Field(f => f.Name(name).DataType(Int64Type.Default).Nullable(false));
        }
        for (int c = 0; c < longs; c++)
        {
            string name = $"long_{c}";
            builder.Field(f => f.Name(name).DataType(Int64Type.Default).Nullable(false));
        }
        for (int c = 0; c < doubles; c++)
        {
            string name = $"double_{c}";
            builder.Field(f => f.Name(name).DataType(DoubleType.Default).Nullable(false));
        }
        for (int c = 0; c < registers; c++)
        {
            string name = $"int_{c}";
            builder.Field(f => f.Name(name).DataType(Int32Type.Default).Nullable(false));
        }
        return builder.Build();
    }

    /// <summary>Writes the occupied slots, or only <paramref name="only"/> (occupied slots, in order), as record batches.</summary>
    private static unsafe void WriteEntities(Stream stream, FeatureTableSnapshot table, int[]? only)
    {
        int longs = PerSlot(table.Longs.LongLength, table.Capacity);
        int doubles = PerSlot(table.Doubles.LongLength, table.Capacity);
        int registers = PerSlot(table.Registers.LongLength, table.Capacity);
        int heads = FeatureTableSnapshot.HeadColumns.Count;
        var schema = EntitySchema(longs, doubles, registers);
        using var writer = new ArrowFileWriter(stream, schema, leaveOpen: true, options: Compressed);
        // Column arrays for one record batch, pinned, reused batch after batch (the writer is done with
        // a batch when WriteRecordBatch returns).
        var slots = GC.AllocateUninitializedArray<byte>(SlotsPerBatch * sizeof(int), pinned: true);
        var wide = new byte[heads + longs + doubles][];
        var narrow = new byte[registers][];
        for (int c = 0; c < wide.Length; c++)
        {
            wide[c] = GC.AllocateUninitializedArray<byte>(SlotsPerBatch * sizeof(long), pinned: true);
        }
        for (int c = 0; c < narrow.Length; c++)
        {
            narrow[c] = GC.AllocateUninitializedArray<byte>(SlotsPerBatch * sizeof(int), pinned: true);
        }
        var wideColumns = stackalloc long*[wide.Length];
        var narrowColumns = stackalloc int*[narrow.Length];
        for (int c = 0; c < wide.Length; c++)
        {
            wideColumns[c] = (long*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(wide[c]));
        }
        for (int c = 0; c < narrow.Length; c++)
        {
            narrowColumns[c] = (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(narrow[c]));
        }
        var slotColumn = (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(slots));
        fixed (byte* headBase = table.Heads)
        fixed (long* longBase = table.Longs)
        fixed (double* doubleBase = table.Doubles)
        fixed (int* registerBase = table.Registers)
        {
            int cursor = 0;
            while (true)
            {
                // One pass over the slots in memory order, each occupied slot's words to their columns
                // (slot rows are hundreds of bytes wide: gathering column by column would miss the cache
                // on every word). Free slots (key 0) are not written: they hold nothing to restore.
                int count = 0;
                int limit = only?.Length ?? table.Capacity;
                for (; cursor < limit && count < SlotsPerBatch; cursor++)
                {
                    int slot = only is null ? cursor : only[cursor];
                    var head = (long*)headBase + (long)slot * FeatureTableSnapshot.HeadWords;
                    if (head[0] == 0)
                    {
                        continue;
                    }
                    slotColumn[count] = slot;
                    for (int w = 0; w < heads; w++)
                    {
                        wideColumns[w][count] = head[w];
                    }
                    var row = longBase + (long)slot * longs;
                    for (int c = 0; c < longs; c++)
                    {
                        wideColumns[heads + c][count] = row[c];
                    }
                    var values = (long*)(doubleBase + (long)slot * doubles);
                    for (int c = 0; c < doubles; c++)
                    {
                        wideColumns[heads + longs + c][count] = values[c];
                    }
                    var ints = registerBase + (long)slot * registers;
                    for (int c = 0; c < registers; c++)
                    {
                        narrowColumns[c][count] = ints[c];
                    }
                    count++;
                }
                if (count == 0)
                {
                    break;
                }
                var columns = new List<IArrowArray>(schema.FieldsList.Count)
                {
                    new Int32Array(new ArrowBuffer(slots.AsMemory(0, count * sizeof(int))), ArrowBuffer.Empty, count, 0, 0),
                    new UInt64Array(new ArrowBuffer(wide[0].AsMemory(0, count * sizeof(long))), ArrowBuffer.Empty, count, 0, 0),
                };
                for (int c = 1; c < heads + longs; c++)
                {
                    columns.Add(new Int64Array(new ArrowBuffer(wide[c].AsMemory(0, count * sizeof(long))), ArrowBuffer.Empty, count, 0, 0));
                }
                for (int c = heads + longs; c < wide.Length; c++)
                {
                    columns.Add(new DoubleArray(new ArrowBuffer(wide[c].AsMemory(0, count * sizeof(long))), ArrowBuffer.Empty, count, 0, 0));
                }
                foreach (var column in narrow)
                {
                    columns.Add(new Int32Array(new ArrowBuffer(column.AsMemory(0, count * sizeof(int))), ArrowBuffer.Empty, count, 0, 0));
                }
                using var batch = new RecordBatch(schema, columns, count);
                writer.WriteRecordBatch(batch);
            }
        }
        writer.WriteEnd();
    }

    private static void ReadEntities(Stream stream, CheckpointTableSummary summary, byte[] headBytes, long[] longs, double[] doubles, int[] registers)
    {
        var heads = MemoryMarshal.Cast<byte, long>(headBytes.AsSpan());
        using var reader = new ArrowFileReader(stream, Apache.Arrow.Memory.MemoryAllocator.Default.Value, Codecs, leaveOpen: true);
        var expected = EntitySchema(summary.LongsPerSlot, summary.DoublesPerSlot, summary.RegistersPerSlot);
        long rows = 0;
        while (reader.ReadNextRecordBatch() is { } batch)
        {
            using (batch)
            {
                if (batch.ColumnCount != expected.FieldsList.Count)
                {
                    throw new InvalidDataException($"{EntitiesName} has {batch.ColumnCount} columns; the manifest's shape needs {expected.FieldsList.Count}.");
                }
                var slots = ((Int32Array)batch.Column(0)).Values;
                foreach (int slot in slots)
                {
                    if ((uint)slot >= (uint)summary.Capacity)
                    {
                        throw new InvalidDataException($"{EntitiesName} names slot {slot}; the manifest's table has {summary.Capacity}.");
                    }
                }
                int column = 1;
                Scatter(((UInt64Array)batch.Column(column++)).Values, slots, MemoryMarshal.Cast<long, ulong>(heads), FeatureTableSnapshot.HeadWords, 0);
                for (int w = 1; w < FeatureTableSnapshot.HeadColumns.Count; w++)
                {
                    Scatter(((Int64Array)batch.Column(column++)).Values, slots, heads, FeatureTableSnapshot.HeadWords, w);
                }
                for (int c = 0; c < summary.LongsPerSlot; c++)
                {
                    Scatter(((Int64Array)batch.Column(column++)).Values, slots, longs, summary.LongsPerSlot, c);
                }
                for (int c = 0; c < summary.DoublesPerSlot; c++)
                {
                    Scatter(((DoubleArray)batch.Column(column++)).Values, slots, doubles, summary.DoublesPerSlot, c);
                }
                for (int c = 0; c < summary.RegistersPerSlot; c++)
                {
                    Scatter(((Int32Array)batch.Column(column++)).Values, slots, registers, summary.RegistersPerSlot, c);
                }
                rows += batch.Length;
            }
        }
        if (rows > summary.Capacity)
        {
            throw new InvalidDataException($"{EntitiesName} holds {rows} entities; the manifest's table has {summary.Capacity} slots.");
        }
    }

    private static void Scatter<T>(ReadOnlySpan<T> column, ReadOnlySpan<int> slots, Span<T> target, int stride, int offset)
        where T : unmanaged
    {
        for (int i = 0; i < column.Length; i++)
        {
            target[(int)((long)slots[i] * stride + offset)] = column[i];
        }
    }

    private static void WriteFreeSlots(Stream stream, int[] free)
    {
        var schema = new Schema.Builder().Field(f => f.Name("slot").DataType(Int32Type.Default).Nullable(false)).Build();
        using var writer = new ArrowFileWriter(stream, schema, leaveOpen: true, options: Compressed);
        for (int start = 0; start < free.Length; start += 16 * SlotsPerBatch)
        {
            int count = Math.Min(16 * SlotsPerBatch, free.Length - start);
            var column = new Int32Array(new ArrowBuffer(MemoryMarshal.AsBytes(free.AsSpan(start, count)).ToArray()), ArrowBuffer.Empty, count, 0, 0);
            using var batch = new RecordBatch(schema, [column], count);
            writer.WriteRecordBatch(batch);
        }
        writer.WriteEnd();
    }

    private static int[] ReadFreeSlots(Stream stream)
    {
        using var reader = new ArrowFileReader(stream, Apache.Arrow.Memory.MemoryAllocator.Default.Value, Codecs, leaveOpen: true);
        var free = new List<int>();
        while (reader.ReadNextRecordBatch() is { } batch)
        {
            using (batch)
            {
                foreach (int slot in ((Int32Array)batch.Column(0)).Values)
                {
                    free.Add(slot);
                }
            }
        }
        return [.. free];
    }

    /// <summary>Passes writes through to a file and hashes them on the way (no second read of what was written).</summary>
    private sealed class HashingStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public override bool CanRead => false;

        // Arrow's file writer asks for a seekable stream to learn positions; it never moves back (a seek
        // elsewhere than where the stream is would make the hash wrong, and is refused).
        public override bool CanSeek => true;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => throw new NotSupportedException();
        }

        public string Digest() => Convert.ToHexString(_hash.GetCurrentHash());

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _hash.AppendData(buffer);
            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin)
        {
            long target = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => inner.Position + offset,
                _ => inner.Length + offset,
            };
            return target == inner.Position ? target : throw new NotSupportedException("A hashed checkpoint file is written front to back.");
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>fsync on a directory, so a rename into it or a file created in it survives a power loss (Linux; elsewhere a no-op).</summary>
    private static void SyncDirectory(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
        int fd = Open(path, ReadOnlyDirectory);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory {path} to sync it (errno {Marshal.GetLastPInvokeError()}).");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"Cannot sync directory {path} (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
