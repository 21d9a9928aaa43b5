using Inference.Engine.Features;

namespace Inference.Engine.Tests;

/// <summary>The journal's flat per-entity index against a dictionary, through adds, updates, removals and resizes.</summary>
public sealed class JournalIndexTests
{
    [Theory]
    [InlineData(1, 64)]
    [InlineData(2, 5_000)]
    [InlineData(3, 200_000)]
    public void Matches_a_dictionary_through_random_adds_and_removals(int seed, int keySpace)
    {
        var random = new Random(seed);
        var index = new JournalIndex();
        var expected = new Dictionary<ulong, (int Newest, int Held)>();
        // Keys that collide in their low and high bits alike, beside random ones.
        ulong Key(int k) => k % 3 == 0 ? (ulong)k << 40 : (ulong)k * 0x9E3779B97F4A7C15UL;
        for (int step = 0; step < 300_000; step++)
        {
            ulong key = Key(random.Next(keySpace));
            if (random.Next(3) == 0 && expected.TryGetValue(key, out var held))
            {
                int at = index.Find(key);
                Assert.True(at >= 0);
                index.Set(at, index.Newest(at), index.Held(at) - 1);
                if (held.Held == 1)
                {
                    expected.Remove(key);
                }
                else
                {
                    expected[key] = (held.Newest, held.Held - 1);
                }
            }
            else
            {
                int at = index.FindOrAdd(key);
                Assert.Equal(expected.TryGetValue(key, out var old) ? old.Newest : -1, index.Newest(at));
                index.Set(at, step, index.Held(at) + 1);
                expected[key] = (step, old.Held + 1);
            }
        }
        Assert.Equal(expected.Count, index.Count);
        foreach (var (key, (newest, held)) in expected)
        {
            int at = index.Find(key);
            Assert.True(at >= 0);
            Assert.Equal(newest, index.Newest(at));
            Assert.Equal(held, index.Held(at));
        }
        for (int k = 0; k < keySpace; k++)
        {
            Assert.Equal(expected.ContainsKey(Key(k)), index.Find(Key(k)) >= 0);
        }
    }
}
