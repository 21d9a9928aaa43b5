using System.Runtime.InteropServices;
using System.Text;
using Inference.Kernels.Embeddings;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// One embedding table of a checkpoint (<c>embeddings-NN.bin</c>): a header (format mark, dimension, optimizer,
/// ids, rows, state values) and the snapshot's arrays as little-endian bytes, in the snapshot's order (ids
/// ascending). The manifest's size and SHA-256 guard it like every other file of the checkpoint.
/// </summary>
internal static class EmbeddingCodec
{
    private static readonly byte[] Mark = "INFEMB01"u8.ToArray();

    public static string FileName(int table) => $"embeddings-{table:D2}.bin";

    public static void Write(Stream stream, EmbeddingSnapshot snapshot)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(Mark);
        writer.Write(snapshot.Dimension);
        writer.Write((int)snapshot.Optimizer);
        writer.Write(snapshot.Keys.Length);
        writer.Write(snapshot.Values.Length);
        writer.Write(snapshot.State.Length);
        writer.Write(MemoryMarshal.AsBytes(snapshot.Keys.AsSpan()));
        writer.Write(MemoryMarshal.AsBytes(snapshot.LastMs.AsSpan()));
        writer.Write(MemoryMarshal.AsBytes(snapshot.Counts.AsSpan()));
        writer.Write(MemoryMarshal.AsBytes(snapshot.Rows.AsSpan()));
        writer.Write(MemoryMarshal.AsBytes(snapshot.Values.AsSpan()));
        writer.Write(MemoryMarshal.AsBytes(snapshot.State.AsSpan()));
    }

    /// <summary>Reads a table written by <see cref="Write"/>; <see cref="InvalidDataException"/> naming <paramref name="name"/> when it is not one.</summary>
    public static EmbeddingSnapshot Read(Stream stream, string name)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!reader.ReadBytes(Mark.Length).AsSpan().SequenceEqual(Mark))
            {
                throw new InvalidDataException($"{name} is not an embedding table of this engine.");
            }
            int dimension = reader.ReadInt32();
            var optimizer = (SparseOptimizerKind)reader.ReadInt32();
            int ids = reader.ReadInt32();
            int values = reader.ReadInt32();
            int state = reader.ReadInt32();
            if (dimension <= 0 || !Enum.IsDefined(optimizer) || ids < 0 || values < dimension || values % dimension != 0 || state < 0)
            {
                throw new InvalidDataException($"{name} has a damaged header (dimension {dimension}, optimizer {(int)optimizer}, {ids} ids, {values} values, {state} state values).");
            }
            var snapshot = new EmbeddingSnapshot(dimension, optimizer, Array<ulong>(reader, ids), Array<long>(reader, ids), Array<int>(reader, ids),
                Array<int>(reader, ids), Array<float>(reader, values), Array<float>(reader, state));
            if (stream.ReadByte() != -1)
            {
                throw new InvalidDataException($"{name} holds more than its header says.");
            }
            return snapshot;
        }
        catch (EndOfStreamException error)
        {
            throw new InvalidDataException($"{name} ends before its header says it does.", error);
        }
    }

    private static T[] Array<T>(BinaryReader reader, int count)
        where T : unmanaged
    {
        var array = new T[count];
        // Past the end: EndOfStreamException, reported with the file's name above.
        reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(array.AsSpan()));
        return array;
    }
}
