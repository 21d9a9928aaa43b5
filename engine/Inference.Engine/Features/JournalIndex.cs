using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Inference.Engine.Features;

/// <summary>
/// The event journal's per-entity index: entity key → (its newest journaled event, how many it holds).
/// Open addressing with linear probing over one flat array of 16-byte entries, key and values together, so a
/// lookup reads one line (a <see cref="Dictionary{TKey, TValue}"/> reads its bucket and then its entry: two misses
/// per event on the executor's thread); removal shifts the following entries back, so no tombstones build up
/// as the ring forgets. Single-threaded.
/// </summary>
internal sealed class JournalIndex
{
    private const int InitialSize = 1_024;

    private Entry[] _entries = [];
    private int _mask;
    private int _shift;

    public JournalIndex() => Resize(InitialSize);

    public int Count { get; private set; }

    /// <summary>The position of <paramref name="entity"/>, or -1.</summary>
    public int Find(ulong entity)
    {
        for (int i = Home(entity); _entries[i].Held != 0; i = (i + 1) & _mask)
        {
            if (_entries[i].Key == entity)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The position of <paramref name="entity"/>, added with nothing held (<see cref="Held"/> 0) when absent.</summary>
    public int FindOrAdd(ulong entity)
    {
        if (2 * (Count + 1) > _entries.Length)
        {
            Resize(2 * _entries.Length);
        }
        int i = Home(entity);
        for (; _entries[i].Held != 0; i = (i + 1) & _mask)
        {
            if (_entries[i].Key == entity)
            {
                return i;
            }
        }
        _entries[i] = new Entry { Key = entity, Newest = -1 };
        Count++;
        return i;
    }

    /// <summary>
    /// Asks the cache for the line where a lookup of <paramref name="entity"/> starts, some lookups before it is
    /// made (a hint: it changes nothing, and an array moved by the collector meanwhile only makes it miss).
    /// </summary>
    public unsafe void Prefetch(ulong entity)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch0(Unsafe.AsPointer(ref _entries[Home(entity)]));
        }
    }

    /// <summary>Sets an entry; <paramref name="held"/> 0 removes it.</summary>
    public void Set(int position, int newest, int held)
    {
        if (held == 0)
        {
            Remove(position);
            return;
        }
        _entries[position].Newest = newest;
        _entries[position].Held = held;
    }

    public int Newest(int position) => _entries[position].Newest;

    public int Held(int position) => _entries[position].Held;

    private int Home(ulong entity) => (int)((entity * 0x9E3779B97F4A7C15UL) >> _shift);

    /// <summary>Empties a position, moving back each following entry whose probe path crosses it.</summary>
    private void Remove(int hole)
    {
        for (int j = (hole + 1) & _mask; _entries[j].Held != 0; j = (j + 1) & _mask)
        {
            int home = Home(_entries[j].Key);
            if (((j - home) & _mask) >= ((j - hole) & _mask))
            {
                _entries[hole] = _entries[j];
                hole = j;
            }
        }
        _entries[hole].Held = 0;
        Count--;
    }

    private void Resize(int size)
    {
        var entries = _entries;
        _entries = new Entry[size];
        _mask = size - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)size);
        foreach (var entry in entries)
        {
            if (entry.Held == 0)
            {
                continue;
            }
            int j = Home(entry.Key);
            while (_entries[j].Held != 0)
            {
                j = (j + 1) & _mask;
            }
            _entries[j] = entry;
        }
    }

    /// <summary>One position: the entity, its newest journaled event, and how many it holds (0: empty).</summary>
    private struct Entry
    {
        public ulong Key;
        public int Newest;
        public int Held;
    }
}
