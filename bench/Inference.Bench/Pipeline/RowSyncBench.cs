using System.Globalization;
using Google.Protobuf;
using Inference.Engine.Sync;
using Inference.Proto.V1;

namespace Inference.Bench.Pipeline;

/// <summary>
/// The bytes of one sync round of a model over ids on the wire: a push of the rows touched since the last one
/// (a share of the table) against a push of the whole table, each the real <c>PushRequest</c> message as a
/// worker sends it, serialized.
/// </summary>
internal static class RowSyncBench
{
    public static int Run(int rows, int dimension, double touched)
    {
        var random = new Random(5);
        RowBlock Block(int count)
        {
            var keys = new ulong[count];
            var values = new float[count * dimension];
            for (int i = 0; i < count; i++)
            {
                keys[i] = (ulong)random.NextInt64(1, long.MaxValue);
            }
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = (float)(random.NextDouble() - 0.5);
            }
            return new RowBlock("item", dimension, keys, values);
        }
        long Bytes(RowBlock block)
        {
            var request = new PushRequest { WorkerId = "worker-0", BaseVersion = 1, Sequence = 1 };
            new[] { block }.WriteTo(request.Rows);
            return request.ToByteArray().LongLength;
        }
        int share = Math.Max(1, (int)Math.Round(rows * touched));
        long whole = Bytes(Block(rows));
        long part = Bytes(Block(share));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| rows pushed | bytes | per row | against the whole table |"));
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| the whole table: {rows:N0} rows of {dimension} | {whole:N0} | {whole / (double)rows:F1} | 1.000 |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| touched since the last push: {share:N0} ({touched:P0}) | {part:N0} | {part / (double)share:F1} | {part / (double)whole:F4} |"));
        return 0;
    }
}
