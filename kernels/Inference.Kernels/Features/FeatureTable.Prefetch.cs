using System.Runtime.Intrinsics.X86;

namespace Inference.Kernels.Features;

// On the CPU backend the kernels' loops over a batch's events miss the cache at nearly every event once the
// entities outnumber what it holds (100k entities of the default features: ~75 MB of rows), and a core keeps
// few misses in flight while it runs a whole event's updates. A loop that only asks for the lines keeps many
// in flight, so the kernels after it find them in the cache. Prefetches never fault and change no state: only
// the time an apply takes (docs/benchmarks.md, "third sitting: the 1M backlog").
public sealed partial class FeatureTable
{
    /// <summary>Lines of a slot's row asked for at most (a window of many buckets has a long row, of which an event touches little).</summary>
    private const int MaxPrefetchBytes = 1024;

    private const int CacheLine = 64;

    /// <summary>Kernels read host memory here and the CPU has the hint (x86): elsewhere nothing is asked for.</summary>
    private bool Prefetches => _device.IsHost && Sse.IsSupported;

    /// <summary>The hash buckets where the batch's keys start probing (before InsertKeys).</summary>
    private unsafe void PrefetchBuckets(int n)
    {
        if (!Prefetches)
        {
            return;
        }
        var keys = (ulong*)Col(_batchKeys).Host;
        var entries = (byte*)Col(_hash!).Host;
        for (int i = 0; i < n; i++)
        {
            Sse.Prefetch0(entries + ((long)FeatureKernels.Home(TableKey(keys[i]), _hashMask) * sizeof(HashEntry)));
        }
    }

    /// <summary>The header and state rows of the slots the batch's held keys have (after InsertKeys found them).</summary>
    private unsafe void PrefetchSlots(int n)
    {
        if (!Prefetches)
        {
            return;
        }
        var slotOf = (int*)Col(_batchSlot).Host;
        var heads = (byte*)Col(_heads).Host;
        var longs = (byte*)Col(_longs).Host;
        var doubles = (byte*)Col(_doubles).Host;
        long longRow = (long)Plan.LongInit.Length * sizeof(long);
        long doubleRow = (long)Plan.DoubleInit.Length * sizeof(double);
        for (int i = 0; i < n; i++)
        {
            long slot = slotOf[i];
            if (slot < 0)
            {
                // A key new to the table: its slot is popped later.
                continue;
            }
            Sse.Prefetch0(heads + (slot * sizeof(SlotHeader)));
            PrefetchRow(longs + (slot * longRow), longRow);
            PrefetchRow(doubles + (slot * doubleRow), doubleRow);
        }
    }

    private static unsafe void PrefetchRow(byte* row, long bytes)
    {
        bytes = Math.Min(bytes, MaxPrefetchBytes);
        // From the line the row starts in to the one it ends in (rows need not start on a line).
        long start = (long)row & ~(long)(CacheLine - 1);
        for (long line = start; line < (long)row + bytes; line += CacheLine)
        {
            Sse.Prefetch0((void*)line);
        }
    }
}
