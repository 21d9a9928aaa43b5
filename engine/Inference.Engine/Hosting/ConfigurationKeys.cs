using System.Collections;
using System.Reflection;
using System.Text.RegularExpressions;
using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Outputs;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Microsoft.Extensions.Configuration;

namespace Inference.Engine.Hosting;

/// <summary>
/// Every configuration key the engine declares, drawn from its options classes (a list element is
/// <c>{n}</c>, a dictionary entry <c>{name}</c>), and the check that refuses a key under
/// <c>Inference:</c> that none declares: a misspelled key would otherwise be ignored without a word.
/// </summary>
internal static partial class ConfigurationKeys
{
    /// <summary>The section of each options class, as the stages bind them.</summary>
    public static readonly IReadOnlyList<(string Section, Type Options)> Sections =
    [
        (InferenceOptions.Section, typeof(InferenceOptions)),
        (KafkaOptions.Section, typeof(KafkaOptions)),
        (FeatureOptions.Section, typeof(FeatureOptions)),
        (ModelOptions.Section, typeof(ModelOptions)),
        (TrainingOptions.Section, typeof(TrainingOptions)),
        (ServingOptions.Section, typeof(ServingOptions)),
        (SyncOptions.Section, typeof(SyncOptions)),
        (CheckpointOptions.Section, typeof(CheckpointOptions)),
        (ScoreOutputOptions.Section, typeof(ScoreOutputOptions)),
        (AlertOptions.Section, typeof(AlertOptions)),
        (SecurityOptions.Section, typeof(SecurityOptions)),
    ];

    /// <summary>Every declared key, e.g. <c>Inference:Kafka:GroupId</c>, <c>Inference:Security:Tokens:{n}</c>.</summary>
    public static readonly IReadOnlyList<string> All = Collect();

    private static readonly string[][] Patterns = [.. All.Select(key => key.Split(':'))];

    /// <summary>One message per key under <c>Inference:</c> that no option declares, naming the nearest declared key.</summary>
    public static IReadOnlyList<string> Unknown(IConfiguration configuration)
    {
        var unknown = new List<string>();
        foreach (var (key, value) in configuration.GetSection(InferenceOptions.Section).AsEnumerable())
        {
            // Sections without a value are the path to their keys; an empty list or object from JSON has an
            // empty value, and is known when a declared key lies below it.
            if (value is null || Matches(key.Split(':'), prefix: value.Length == 0))
            {
                continue;
            }
            string hint = Nearest(key) is { } nearest ? $"; did you mean {nearest}?" : "";
            unknown.Add($"{key} is not a configuration key of the engine{hint} (docs/reference/configuration.md lists them)");
        }
        return unknown;
    }

    /// <summary>
    /// The binder's failure to convert a value (<c>--port abc</c>, an enum name that does not exist) as a
    /// one-line failure naming the key, the value and what it takes; null for any other error.
    /// </summary>
    public static string? ConversionFailure(InvalidOperationException error)
    {
        if (ConversionError().Match(error.Message) is not { Success: true } match)
        {
            return null;
        }
        string key = match.Groups["key"].Value;
        string pattern = Generalize(key);
        string takes = Describe().FirstOrDefault(option => string.Equals(option.Key, pattern, StringComparison.OrdinalIgnoreCase))?.Type is { } type
            ? (type.Contains(',', StringComparison.Ordinal) ? $"one of {type}" : Article(type))
            : Article(match.Groups["type"].Value);
        return $"{key}: '{match.Groups["value"].Value}' is not valid; it takes {takes}";
    }

    private static string Article(string type) => $"{("aeiou".Contains(char.ToLowerInvariant(type[0]), StringComparison.Ordinal) ? "an" : "a")} {type}";

    [GeneratedRegex(@"^Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'")]
    private static partial Regex ConversionError();

    /// <summary>The declared key closest to <paramref name="key"/> (edit distance, ignoring case), or null when none is close.</summary>
    public static string? Nearest(string key) => Spelling.Nearest(Generalize(key), All);

    private static bool Matches(string[] segments, bool prefix)
    {
        foreach (var pattern in Patterns)
        {
            if (segments.Length > pattern.Length || (!prefix && segments.Length != pattern.Length))
            {
                continue;
            }
            bool match = true;
            for (int i = 0; i < segments.Length && match; i++)
            {
                match = pattern[i] switch
                {
                    "{n}" => segments[i].All(char.IsAsciiDigit) && segments[i].Length > 0,
                    "{name}" => segments[i].Length > 0,
                    _ => string.Equals(pattern[i], segments[i], StringComparison.OrdinalIgnoreCase),
                };
            }
            if (match)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>List indexes as <c>{n}</c>, so "Tokens:3" is compared with "Tokens:{n}".</summary>
    private static string Generalize(string key) =>
        string.Join(':', key.Split(':').Select(s => s.Length > 0 && s.All(char.IsAsciiDigit) ? "{n}" : s));

    private static List<string> Collect() => [.. Describe().Select(option => option.Key)];

    /// <summary>
    /// Every declared key with its type and its default as text: what <c>docs/reference/configuration.md</c>
    /// lists (a test holds the two equal). A list element's keys show the element's defaults.
    /// </summary>
    public static IReadOnlyList<DeclaredKey> Describe()
    {
        var keys = new List<DeclaredKey>();
        foreach (var (section, type) in Sections)
        {
            AddProperties(keys, section, type, Activator.CreateInstance(type), depth: 0);
        }
        return keys;
    }

    private static void AddProperties(List<DeclaredKey> keys, string prefix, Type type, object? instance, int depth)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetSetMethod() is null || property.GetIndexParameters().Length > 0)
            {
                continue;
            }
            Add(keys, $"{prefix}:{property.Name}", property.PropertyType, instance is null ? null : property.GetValue(instance), depth);
        }
    }

    private static void Add(List<DeclaredKey> keys, string key, Type type, object? value, int depth)
    {
        if (depth > 8)
        {
            throw new InvalidOperationException($"Options nest too deeply at {key}.");
        }
        var scalar = Nullable.GetUnderlyingType(type) ?? type;
        if (scalar.IsPrimitive || scalar.IsEnum || scalar == typeof(string) || scalar == typeof(decimal) || scalar == typeof(TimeSpan))
        {
            keys.Add(new DeclaredKey(key, TypeName(scalar), DefaultText(value)));
        }
        else if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            Add(keys, $"{key}:{{name}}", type.GetGenericArguments()[1], null, depth + 1);
        }
        else if (type.IsArray || (type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type)))
        {
            var element = type.IsArray ? type.GetElementType()! : type.GetGenericArguments()[0];
            object? sample = element.IsClass && element != typeof(string) && element.GetConstructor(Type.EmptyTypes) is not null
                ? Activator.CreateInstance(element)
                : null;
            Add(keys, $"{key}:{{n}}", element, sample, depth + 1);
        }
        else
        {
            AddProperties(keys, key, type, value, depth + 1);
        }
    }

    private static string TypeName(Type type) => type switch
    {
        _ when type.IsEnum => string.Join(", ", Enum.GetNames(type)),
        _ when type == typeof(int) => "int",
        _ when type == typeof(long) => "long",
        _ when type == typeof(double) => "double",
        _ when type == typeof(float) => "float",
        _ when type == typeof(bool) => "bool",
        _ when type == typeof(string) => "string",
        _ => type.Name,
    };

    private static string DefaultText(object? value) => value switch
    {
        null => "",
        string text => text,
        bool flag => flag ? "true" : "false",
        IFormattable number => number.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>A declared configuration key, its type (an enum as its names) and its default as text (empty when none).</summary>
internal sealed record DeclaredKey(string Key, string Type, string Default);
