namespace Inference.Engine.Features;

/// <summary>
/// The event journal's per-entity index: entity key → (its newest journaled event, how many it holds).
/// Open addressing with linear probing over flat arrays, one probe line per lookup (a
/// <see cref="Dictionary{TKey, TValue}"/> reads its bucket and then its entry: two misses per event on the
/// executor's thread); removal shifts the following entries back, so no tombstones build up as the ring
/// forgets. Single-threaded.
/// </summary>
internal sealed class JournalIndex
{
    private const int InitialSize = 1_024;

    private ulong[] _keys = [];
    private int[] _newest = [];
    // 0: an empty position (an entity in the index holds at least one event).
    private int[] _held = [];
    private int _mask;
    private int _shift;

    public JournalIndex() => Resize(InitialSize);

    public int Count { get; private set; }

    /// <summary>The position of <paramref name="entity"/>, or -1.</summary>
    public int Find(ulong entity)
    {
        for (int i = Home(entity); _held[i] != 0; i = (i + 1) & _mask)
        {
            if (_keys[i] == entity)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The position of <paramref name="entity"/>, added with nothing held (<see cref="Held"/> 0) when absent.</summary>
    public int FindOrAdd(ulong entity)
    {
        if (2 * (Count + 1) > _keys.Length)
        {
            Resize(2 * _keys.Length);
        }
        int i = Home(entity);
        for (; _held[i] != 0; i = (i + 1) & _mask)
        {
            if (_keys[i] == entity)
            {
                return i;
            }
        }
        _keys[i] = entity;
        _newest[i] = -1;
        Count++;
        return i;
    }

    /// <summary>Sets an entry; <paramref name="held"/> 0 removes it.</summary>
    public void Set(int position, int newest, int held)
    {
        if (held == 0)
        {
            Remove(position);
            return;
        }
        _newest[position] = newest;
        _held[position] = held;
    }

    public int Newest(int position) => _newest[position];

    public int Held(int position) => _held[position];

    private int Home(ulong entity) => (int)((entity * 0x9E3779B97F4A7C15UL) >> _shift);

    /// <summary>Empties a position, moving back each following entry whose probe path crosses it.</summary>
    private void Remove(int hole)
    {
        for (int j = (hole + 1) & _mask; _held[j] != 0; j = (j + 1) & _mask)
        {
            int home = Home(_keys[j]);
            if (((j - home) & _mask) >= ((j - hole) & _mask))
            {
                _keys[hole] = _keys[j];
                _newest[hole] = _newest[j];
                _held[hole] = _held[j];
                hole = j;
            }
        }
        _held[hole] = 0;
        Count--;
    }

    private void Resize(int size)
    {
        var (keys, newest, held) = (_keys, _newest, _held);
        _keys = new ulong[size];
        _newest = new int[size];
        _held = new int[size];
        _mask = size - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)size);
        for (int i = 0; i < keys.Length; i++)
        {
            if (held[i] == 0)
            {
                continue;
            }
            int j = Home(keys[i]);
            while (_held[j] != 0)
            {
                j = (j + 1) & _mask;
            }
            _keys[j] = keys[i];
            _newest[j] = newest[i];
            _held[j] = held[i];
        }
    }
}
