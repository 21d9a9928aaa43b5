using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Apache.Arrow;
using Apache.Arrow.Compression;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Inference.Kernels.Features;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// The entity state of a checkpoint as Arrow IPC files compressed with LZ4 frames: one column per state
/// word, a record batch per 64k occupied slots, the slot of each row in the first column. Free slots are a
/// file of their own, one column.
/// </summary>
internal static class EntityCodec
{
    private const int SlotsPerBatch = 65_536;

    private static readonly CompressionCodecFactory Codecs = new();
    private static readonly IpcOptions Compressed = new() { CompressionCodec = CompressionCodecType.Lz4Frame, CompressionCodecFactory = Codecs };

    /// <summary>State words per slot of one array of the table (0 for an empty table).</summary>
    internal static int PerSlot(long length, int capacity) => capacity == 0 ? 0 : checked((int)(length / capacity));

    private static Schema Schema(int longs, int doubles, int registers)
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
    internal static unsafe void WriteEntities(Stream stream, FeatureTableSnapshot table, int[]? only)
    {
        int longs = PerSlot(table.Longs.LongLength, table.Capacity);
        int doubles = PerSlot(table.Doubles.LongLength, table.Capacity);
        int registers = PerSlot(table.Registers.LongLength, table.Capacity);
        int heads = FeatureTableSnapshot.HeadColumns.Count;
        var schema = Schema(longs, doubles, registers);
        using var writer = new ArrowFileWriter(stream, schema, leaveOpen: true, options: Compressed);
        // The file's magic and schema now: the writer writes them with the first record batch, and a table
        // with no entity (labels learned before any event) has none: without this it would not read back.
        writer.WriteStart();
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

    /// <summary>
    /// The table a checkpoint's manifest describes, filled from <paramref name="files"/> of
    /// <paramref name="path"/> (all of its entity files, or only some partitions'); every other slot is empty.
    /// </summary>
    internal static FeatureTableSnapshot ReadTable(string path, CheckpointManifest manifest, IEnumerable<string> files, int[] free)
    {
        var summary = manifest.Table;
        if (summary.Capacity < 0 || summary.LongsPerSlot < 0 || summary.DoublesPerSlot < 0 || summary.RegistersPerSlot < 0)
        {
            throw new InvalidDataException($"{CheckpointFiles.ManifestName} gives a negative table shape.");
        }
        var heads = new byte[checked(summary.Capacity * FeatureTableSnapshot.HeadWords * sizeof(long))];
        var longs = new long[checked((long)summary.Capacity * summary.LongsPerSlot)];
        var doubles = new double[checked((long)summary.Capacity * summary.DoublesPerSlot)];
        var registers = new int[checked((long)summary.Capacity * summary.RegistersPerSlot)];
        foreach (string file in files)
        {
            using var stream = File.OpenRead(System.IO.Path.Combine(path, file));
            ReadEntities(stream, file, summary, heads, longs, doubles, registers);
        }
        return new FeatureTableSnapshot(manifest.PlanFingerprint, summary.Capacity, summary.Sequence, summary.PinMark, heads, longs, doubles, registers, free);
    }

    /// <summary>Scatters the rows of one entity file (<paramref name="file"/>, named in every error) into the table's arrays.</summary>
    private static void ReadEntities(Stream stream, string file, CheckpointTableSummary summary, byte[] headBytes, long[] longs, double[] doubles, int[] registers)
    {
        var heads = MemoryMarshal.Cast<byte, long>(headBytes.AsSpan());
        using var reader = new ArrowFileReader(stream, Apache.Arrow.Memory.MemoryAllocator.Default.Value, Codecs, leaveOpen: true);
        var expected = Schema(summary.LongsPerSlot, summary.DoublesPerSlot, summary.RegistersPerSlot);
        long rows = 0;
        while (reader.ReadNextRecordBatch() is { } batch)
        {
            using (batch)
            {
                if (batch.ColumnCount != expected.FieldsList.Count)
                {
                    throw new InvalidDataException($"{file} has {batch.ColumnCount} columns; the manifest's shape needs {expected.FieldsList.Count}.");
                }
                var slots = ((Int32Array)batch.Column(0)).Values;
                foreach (int slot in slots)
                {
                    if ((uint)slot >= (uint)summary.Capacity)
                    {
                        throw new InvalidDataException($"{file} names slot {slot}; the manifest's table has {summary.Capacity}.");
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
            throw new InvalidDataException($"{file} holds {rows} entities; the manifest's table has {summary.Capacity} slots.");
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

    internal static void WriteFreeSlots(Stream stream, int[] free)
    {
        var schema = new Schema.Builder().Field(f => f.Name("slot").DataType(Int32Type.Default).Nullable(false)).Build();
        using var writer = new ArrowFileWriter(stream, schema, leaveOpen: true, options: Compressed);
        // The file's magic and schema now: the writer writes them with the first record batch, and a table
        // with no entity (labels learned before any event) has none: without this it would not read back.
        writer.WriteStart();
        for (int start = 0; start < free.Length; start += 16 * SlotsPerBatch)
        {
            int count = Math.Min(16 * SlotsPerBatch, free.Length - start);
            var column = new Int32Array(new ArrowBuffer(MemoryMarshal.AsBytes(free.AsSpan(start, count)).ToArray()), ArrowBuffer.Empty, count, 0, 0);
            using var batch = new RecordBatch(schema, [column], count);
            writer.WriteRecordBatch(batch);
        }
        writer.WriteEnd();
    }

    internal static int[] ReadFreeSlots(Stream stream)
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
}
