using System.Text.RegularExpressions;
using Inference.Engine.Hosting;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>The configuration and metrics references list everything the code declares, and nothing it does not.</summary>
public sealed partial class ReferenceTests
{
    [Fact]
    public void The_configuration_reference_lists_every_option_and_only_those()
    {
        var listed = FirstCells(Path.Combine("docs", "reference", "configuration.md"), KeyCell());
        var declared = ConfigurationKeys.All.ToHashSet(StringComparer.Ordinal);

        // A missing option is reported as the row to add, its range and meaning left to fill in.
        var missing = ConfigurationKeys.Describe().Where(key => !listed.Contains(key.Key))
            .Select(key => $"| `{key.Key}` | {key.Type} | {(key.Default.Length == 0 ? "—" : $"`{key.Default}`")} | | |").ToList();
        Assert.True(missing.Count == 0, $"Options not in docs/reference/configuration.md:\n{string.Join("\n", missing)}");
        Assert.True(listed.Except(declared).Order().ToList() is { Count: 0 }, $"docs/reference/configuration.md lists keys no option declares: {string.Join(", ", listed.Except(declared).Order())}");
    }

    [Fact]
    public void The_configuration_reference_gives_each_option_its_type_and_default_from_the_code()
    {
        var rows = Rows(Path.Combine("docs", "reference", "configuration.md"), KeyCell());
        var wrong = new List<string>();
        foreach (var key in ConfigurationKeys.Describe())
        {
            if (rows.TryGetValue(key.Key, out var cells) && (cells.Count < 3 || Plain(cells[1]) != key.Type || Plain(cells[2]) != key.Default))
            {
                wrong.Add($"{key.Key}: listed as '{string.Join(" | ", cells.Skip(1).Take(2))}', declared as '{key.Type} | {key.Default}'");
            }
        }
        Assert.True(wrong.Count == 0, $"docs/reference/configuration.md differs from the code:\n{string.Join("\n", wrong)}");
    }

    [Fact]
    public void The_metrics_reference_lists_every_instrument_and_only_those()
    {
        var listed = FirstCells(Path.Combine("docs", "reference", "metrics.md"), NameCell());
        var declared = Instruments();
        Assert.True(declared.Count > 40, $"only {declared.Count} instruments found in the engine's source");
        Assert.True(declared.Except(listed).Order().ToList() is { Count: 0 }, $"Instruments not in docs/reference/metrics.md: {string.Join(", ", declared.Except(listed).Order())}");
        Assert.True(listed.Except(declared).Order().ToList() is { Count: 0 }, $"docs/reference/metrics.md lists instruments the engine does not create: {string.Join(", ", listed.Except(declared).Order())}");
    }

    /// <summary>Every instrument the engine creates: the name given to a <c>Create*</c> call or a <c>TotalCounter</c>.</summary>
    private static HashSet<string> Instruments()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repository.Root, "engine"), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            {
                continue;
            }
            foreach (Match match in InstrumentCall().Matches(File.ReadAllText(file)))
            {
                names.Add(match.Groups["name"].Value);
            }
        }
        return names;
    }

    /// <summary>The cells of each table row whose first cell matches, keyed by that cell's text.</summary>
    private static Dictionary<string, List<string>> Rows(string relative, Regex cell)
    {
        string path = Path.Combine(Repository.Root, relative);
        Assert.True(File.Exists(path), $"{relative} is missing");
        var rows = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            if (cell.Match(line) is { Success: true } match)
            {
                // Split on the pipes that are not escaped; the first and last pieces lie outside the table.
                var cells = CellBoundary().Split(line.Trim()).ToList();
                rows[match.Groups[1].Value] = cells[1..^1];
            }
        }
        return rows;
    }

    /// <summary>A cell's text without its code quotes and escapes, e.g. <c>`20`</c> → 20, <c>—</c> → empty.</summary>
    private static string Plain(string cell)
    {
        string text = cell.Trim().Replace("`", "", StringComparison.Ordinal).Replace("\\|", "|", StringComparison.Ordinal).Trim();
        return text is "—" or "-" ? "" : text;
    }

    private static HashSet<string> FirstCells(string relative, Regex cell)
    {
        string path = Path.Combine(Repository.Root, relative);
        Assert.True(File.Exists(path), $"{relative} is missing");
        var cells = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            if (cell.Match(line) is { Success: true } match)
            {
                cells.Add(match.Groups[1].Value);
            }
        }
        return cells;
    }

    [GeneratedRegex(@"^\|\s*`(Inference(?::[^`|]+)?)`\s*\|")]
    private static partial Regex KeyCell();

    [GeneratedRegex(@"(?<!\\)\|")]
    private static partial Regex CellBoundary();

    [GeneratedRegex(@"^\|\s*`(inference\.[a-z0-9_.]+)`\s*\|")]
    private static partial Regex NameCell();

    [GeneratedRegex(@"(?:\.Create\w+(?:<[^>]+>)?\(\s*|\(\s*_?meter\s*,\s*)""(?<name>inference\.[a-z0-9_.]+)""")]
    private static partial Regex InstrumentCall();
}
