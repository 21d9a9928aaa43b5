using System.Text.RegularExpressions;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>The shape of the engine's source: folders that depend one way, files of a size one can read.</summary>
public sealed partial class HouseTests
{
    /// <summary>
    /// The folders of <c>engine/Inference.Engine</c>, lowest first: each may import only the folders before
    /// it. Pipeline holds what every stage shares; Kafka ← Ingest ← Features; the parameter server (Sync)
    /// merges named tensors and knows no model, so the trainer above it is its client; Serving reads the
    /// trained model; Checkpoints and Outputs depend on the stages they serve; the pool joins them all;
    /// Hosting composes.
    /// </summary>
    private static readonly string[] Layers =
    [
        "Pipeline", "Security", "Kafka", "Ingest", "Features", "Sync", "Training", "Serving", "Checkpoints", "Pool", "Outputs", "Hosting",
    ];

    private const int MaxLines = 400;

    [Fact]
    public void Every_folder_of_the_engine_imports_only_the_folders_below_it()
    {
        string root = Path.Combine(Repository.Root, "engine", "Inference.Engine");
        var folders = Directory.GetDirectories(root).Select(Path.GetFileName).Where(name => name is not ("bin" or "obj")).Cast<string>().ToList();
        Assert.True(folders.Except(Layers).ToList() is { Count: 0 }, $"Folders not placed in {nameof(HouseTests)}.{nameof(Layers)}: {string.Join(", ", folders.Except(Layers))}");

        var declared = folders.ToDictionary(folder => folder, folder => SourceFiles(Path.Combine(root, folder))
            .SelectMany(file => TypeDeclaration().Matches(File.ReadAllText(file)).Select(match => match.Groups[1].Value)).ToHashSet(StringComparer.Ordinal));
        var wrong = new List<string>();
        foreach (var folder in folders)
        {
            int rank = Array.IndexOf(Layers, folder);
            foreach (var file in SourceFiles(Path.Combine(root, folder)))
            {
                foreach (var imported in Imports(File.ReadAllText(file), declared))
                {
                    if (imported != folder && Array.IndexOf(Layers, imported) > rank)
                    {
                        wrong.Add($"{folder} → {imported} ({Path.GetFileName(file)})");
                    }
                }
            }
        }
        Assert.True(wrong.Count == 0, $"Imports against the layering:\n{string.Join("\n", wrong.Order())}");
    }

    [Fact]
    public void No_source_file_is_longer_than_400_lines()
    {
        var longer = new[] { "engine", "kernels", "models", "proto" }
            .SelectMany(folder => SourceFiles(Path.Combine(Repository.Root, folder)))
            .Select(file => (File: Path.GetRelativePath(Repository.Root, file), Lines: File.ReadLines(file).Count()))
            .Where(file => file.Lines > MaxLines)
            .Select(file => $"{file.File}: {file.Lines} lines")
            .ToList();
        Assert.True(longer.Count == 0, $"Files over {MaxLines} lines:\n{string.Join("\n", longer)}");
    }

    [Fact]
    public void The_layering_check_sees_imports_by_using_by_full_name_and_by_folder_name()
    {
        var declared = new Dictionary<string, HashSet<string>>
        {
            ["Features"] = ["FeatureStore"],
            ["Serving"] = ["ServingOptions"],
            ["Kafka"] = ["KafkaConnection"],
        };
        const string Source = """
            using Inference.Engine.Features;
            namespace Inference.Engine.Ingest;
            // Serving.ServingOptions in a comment is no import.
            sealed class Probe(Serving.ServingOptions options, Inference.Engine.Kafka.KafkaConnection kafka)
            {
                int Features => options.Features.Count;
            }
            """;
        Assert.Equal(["Features", "Kafka", "Serving"], Imports(Source, declared).Order());
    }

    /// <summary>The folders a source file imports: <c>using</c> directives, full names, and names qualified by a folder (the type must be declared there).</summary>
    private static HashSet<string> Imports(string source, IReadOnlyDictionary<string, HashSet<string>> declared)
    {
        string code = LineComment().Replace(source, "");
        var imported = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match match in FullName().Matches(code))
        {
            if (declared.ContainsKey(match.Groups[1].Value))
            {
                imported.Add(match.Groups[1].Value);
            }
        }
        foreach (Match match in QualifiedName().Matches(code))
        {
            if (declared.TryGetValue(match.Groups[1].Value, out var types) && types.Contains(match.Groups[2].Value))
            {
                imported.Add(match.Groups[1].Value);
            }
        }
        return imported;
    }

    private static IEnumerable<string> SourceFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories).Where(file =>
            !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
            && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [GeneratedRegex(@"//.*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"\bInference\.Engine\.(\w+)")]
    private static partial Regex FullName();

    [GeneratedRegex(@"(?<![\w.])(\w+)\.([A-Z]\w*)")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"\b(?:class|struct|record|interface|enum)\s+(\w+)")]
    private static partial Regex TypeDeclaration();
}
