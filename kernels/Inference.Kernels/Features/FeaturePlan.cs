namespace Inference.Kernels.Features;

/// <summary>
/// Validated feature declarations compiled into what the kernels read: one descriptor per feature
/// (kind, source column, state offsets, sizes, rates, default) and the per-slot state widths.
/// Numeric fields and key fields become event columns in first-use order.
/// </summary>
/// <remarks>
/// Besides the declared features, a plan may keep per entity the key of the newest event's value of a
/// key field (<see cref="LastKeyFields"/>: the ids of a model's <c>LastOf</c> inputs). They are state,
/// not model inputs: their descriptors follow the features', and reads return them apart.
/// </remarks>
public sealed class FeaturePlan
{
    /// <summary>The kind of a last-key descriptor (not an <see cref="Aggregation"/>: no model input reads it).</summary>
    internal const int LastKeyKind = 1_000;

    /// <summary>A last key is stored as <c>(long)(key ^ LastKeyFlip)</c>: signed order is the keys' order, and no key (0) is <see cref="long.MinValue"/>.</summary>
    internal const ulong LastKeyFlip = 1UL << 63;

    private readonly Dictionary<string, int> _indexOf = new(StringComparer.Ordinal);

    public FeaturePlan(IReadOnlyList<FeatureDefinition> definitions, IReadOnlyList<string>? lastKeyFields = null)
    {
        if (definitions.Count == 0)
        {
            throw new FeatureDefinitionException("No features are declared.");
        }
        Definitions = definitions;
        var names = _indexOf;
        for (int f = 0; f < definitions.Count; f++)
        {
            var name = definitions[f].Name;
            if (string.IsNullOrWhiteSpace(name))
            {
                throw new FeatureDefinitionException($"Feature {f} has no name.");
            }
            if (!names.TryAdd(name, f))
            {
                throw new FeatureDefinitionException($"Feature '{name}' is declared twice.");
            }
        }

        var numeric = new List<string>();
        var keys = new List<string>();
        var lastKeys = lastKeyFields ?? [];
        Descriptors = new FeatureDescriptor[definitions.Count + lastKeys.Count];
        var longInit = new List<long>();
        var doubleInit = new List<double>();
        int ints = 0;
        for (int f = 0; f < definitions.Count; f++)
        {
            var d = definitions[f];
            Validate(d, definitions, names);
            ref var descriptor = ref Descriptors[f];
            descriptor.Kind = (int)d.Aggregation;
            descriptor.Transform = (int)d.Transform;
            descriptor.LongOffset = longInit.Count;
            descriptor.DoubleOffset = doubleInit.Count;
            descriptor.IntOffset = ints;
            descriptor.Default = d.Default;
            descriptor.Numeric = d.UsesNumericField ? ColumnOf(numeric, d.Field!) : -1;
            switch (d.Aggregation)
            {
                case Aggregation.Sum or Aggregation.Mean or Aggregation.DecayedSum:
                    doubleInit.Add(0);
                    break;
                case Aggregation.Min:
                    doubleInit.Add(double.PositiveInfinity);
                    break;
                case Aggregation.Max or Aggregation.Last:
                    doubleInit.Add(double.NegativeInfinity);
                    break;
                case Aggregation.DecayedMean:
                    doubleInit.Add(0);
                    doubleInit.Add(0);
                    break;
                case Aggregation.WindowCount or Aggregation.WindowSum or Aggregation.WindowMean:
                {
                    long width = d.HorizonMs / d.Buckets;
                    // The ring holds every bucket an on-time event can land in: the window plus the lateness, plus one.
                    int ring = checked((int)((d.HorizonMs + d.AllowedLatenessMs + width - 1) / width) + 1);
                    descriptor.Size = ring;
                    descriptor.WindowBuckets = d.Buckets;
                    descriptor.BucketWidth = width;
                    descriptor.Lateness = d.AllowedLatenessMs;
                    for (int b = 0; b < 2 * ring; b++)
                    {
                        longInit.Add(-1); // committed epochs, then pending epochs: none yet
                    }
                    for (int b = 0; b < 2 * ring; b++)
                    {
                        doubleInit.Add(0); // per bucket: count, sum
                    }
                    break;
                }
                case Aggregation.DistinctCount:
                    descriptor.Source = ColumnOf(keys, d.Field!);
                    descriptor.Size = d.Precision;
                    ints += 1 << d.Precision;
                    break;
                case Aggregation.Ratio:
                    descriptor.Source = names[d.Numerator!];
                    descriptor.Denominator = names[d.Denominator!];
                    break;
            }
            if (d.Aggregation is Aggregation.DecayedSum or Aggregation.DecayedMean)
            {
                descriptor.DecayRate = Math.Log(2) / d.HalfLifeMs;
            }
        }
        for (int k = 0; k < lastKeys.Count; k++)
        {
            string field = lastKeys[k];
            if (string.IsNullOrWhiteSpace(field) || field is "entity" or "ts" || numeric.Contains(field))
            {
                throw new FeatureDefinitionException($"The last key of field '{field}' needs a key field of the events (not 'entity', 'ts' or a numeric field a feature aggregates).");
            }
            ref var descriptor = ref Descriptors[definitions.Count + k];
            descriptor.Kind = LastKeyKind;
            descriptor.Source = ColumnOf(keys, field);
            descriptor.LongOffset = longInit.Count;
            descriptor.DoubleOffset = doubleInit.Count;
            descriptor.Numeric = -1;
            longInit.Add(long.MinValue); // no key yet
        }
        NumericFields = numeric;
        KeyFields = keys;
        LastKeyFields = [.. lastKeys];
        LongInit = [.. longInit];
        DoubleInit = [.. doubleInit];
        IntStateWidth = ints;
    }

    public IReadOnlyList<FeatureDefinition> Definitions { get; }

    public int Count => Definitions.Count;

    /// <summary>Numeric event fields, in column order.</summary>
    public IReadOnlyList<string> NumericFields { get; }

    /// <summary>Key event fields (hashed to 64 bits), in column order.</summary>
    public IReadOnlyList<string> KeyFields { get; }

    /// <summary>Key fields whose newest value each entity keeps (in this order in <see cref="FeatureTable"/> reads); empty for most plans.</summary>
    public IReadOnlyList<string> LastKeyFields { get; }

    /// <summary>The plan as the kernels read it: one descriptor per feature, in declaration order, then one per last key.</summary>
    internal FeatureDescriptor[] Descriptors { get; }

    /// <summary>Initial per-slot long state (window epochs).</summary>
    internal long[] LongInit { get; }

    /// <summary>Initial per-slot double state (sums, extremes, window buckets).</summary>
    internal double[] DoubleInit { get; }

    internal int IntStateWidth { get; }

    /// <summary>Whether any feature is windowed (a batch then runs the lateness and ring-epoch kernel).</summary>
    internal bool HasWindows => Definitions.Any(d => d.IsWindowed);

    /// <summary>The smallest allowed lateness of a windowed feature; <see cref="long.MaxValue"/> without windows.</summary>
    internal long MinLatenessMs => Definitions.Where(d => d.IsWindowed).Select(d => d.AllowedLatenessMs).DefaultIfEmpty(long.MaxValue).Min();

    /// <summary>
    /// Whether any feature reads the per-entity anchor time (decayed, last and windowed values): a batch
    /// then re-anchors each entity it touches. Sums, counts and extremes do not need it.
    /// </summary>
    internal bool NeedsAnchor => LastKeyFields.Count > 0 || Definitions.Any(d => d.IsWindowed || d.Aggregation is Aggregation.DecayedSum or Aggregation.DecayedMean or Aggregation.Last);

    /// <summary>Device bytes of state per entity slot, the per-slot columns included.</summary>
    public long BytesPerEntity => 64L + 8L * (LongInit.Length + DoubleInit.Length) + 4L * IntStateWidth;

    /// <summary>The position of a declared feature, or -1.</summary>
    public int IndexOf(string feature) => _indexOf.GetValueOrDefault(feature, -1);

    /// <summary>The event column of a field, adding it on first use.</summary>
    private static int ColumnOf(List<string> columns, string field)
    {
        int index = columns.IndexOf(field);
        if (index < 0)
        {
            columns.Add(field);
            index = columns.Count - 1;
        }
        return index;
    }

    private static void Validate(FeatureDefinition d, IReadOnlyList<FeatureDefinition> definitions, Dictionary<string, int> names)
    {
        string at = $"Feature '{d.Name}' ({d.Aggregation})";
        if (!Enum.IsDefined(d.Aggregation))
        {
            throw new FeatureDefinitionException($"Feature '{d.Name}': unknown aggregation {d.Aggregation}.");
        }
        if (!Enum.IsDefined(d.Transform))
        {
            throw new FeatureDefinitionException($"{at}: unknown transform {d.Transform}.");
        }
        if ((d.UsesNumericField || d.UsesKeyField) && (string.IsNullOrWhiteSpace(d.Field) || d.Field is "entity" or "ts"))
        {
            throw new FeatureDefinitionException($"{at} needs Field: the event field it aggregates (not 'entity' or 'ts').");
        }
        if (!double.IsFinite(d.Default))
        {
            throw new FeatureDefinitionException($"{at}: Default must be a finite number.");
        }
        if (d.Aggregation is Aggregation.DecayedSum or Aggregation.DecayedMean && !(d.HalfLifeMs > 0 && double.IsFinite(d.HalfLifeMs)))
        {
            throw new FeatureDefinitionException($"{at} needs HalfLifeMs > 0 (got {d.HalfLifeMs}).");
        }
        if (d.IsWindowed)
        {
            if (d.Buckets is < 1 or > 1_024)
            {
                throw new FeatureDefinitionException($"{at}: Buckets must be between 1 and 1024 (got {d.Buckets}).");
            }
            if (d.HorizonMs <= 0 || d.HorizonMs % d.Buckets != 0)
            {
                throw new FeatureDefinitionException($"{at} needs HorizonMs > 0 and a whole number of its {d.Buckets} buckets (got {d.HorizonMs}).");
            }
            if (d.AllowedLatenessMs < 0 || d.AllowedLatenessMs > 64 * d.HorizonMs)
            {
                throw new FeatureDefinitionException($"{at}: AllowedLatenessMs must be between 0 and 64 horizons (got {d.AllowedLatenessMs}).");
            }
        }
        if (d.Aggregation == Aggregation.DistinctCount && d.Precision is < FeatureDefinition.MinPrecision or > FeatureDefinition.MaxPrecision)
        {
            throw new FeatureDefinitionException($"{at}: Precision must be between {FeatureDefinition.MinPrecision} and {FeatureDefinition.MaxPrecision} (got {d.Precision}).");
        }
        if (d.Aggregation == Aggregation.Ratio)
        {
            foreach (var (role, operand) in new[] { ("Numerator", d.Numerator), ("Denominator", d.Denominator) })
            {
                if (operand is null || !names.ContainsKey(operand))
                {
                    throw new FeatureDefinitionException($"{at}: {role} must name a declared feature (got '{operand}').");
                }
                if (operand == d.Name)
                {
                    throw new FeatureDefinitionException($"{at}: {role} cannot be the feature itself.");
                }
                // Kernels do not recurse: an operand is a plain feature.
                if (definitions[names[operand]].Aggregation == Aggregation.Ratio)
                {
                    throw new FeatureDefinitionException($"Feature '{d.Name}' (Ratio): its operand '{operand}' is a ratio; ratios of ratios are not supported.");
                }
            }
        }
    }
}
