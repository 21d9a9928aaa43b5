using System.Globalization;
using System.Text;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Inference.Deployment.Tests;

/// <summary>
/// Renders the Helm chart in <c>deploy/helm/inference</c> the way <c>helm template</c> does, for the part
/// of Helm's language the chart uses (Helm is not installed here): Go template actions with whitespace
/// trimming, <c>if/else/with/range/define</c>, variables, pipelines, and the functions <c>include</c>,
/// <c>toYaml</c>, <c>nindent</c>, <c>indent</c>, <c>quote</c>, <c>printf</c>, <c>until</c>, <c>int</c>,
/// <c>not</c>, <c>randAlphaNum</c>, <c>b64enc</c>, and <c>lookup</c> of one object by name (against the
/// objects a test says the cluster holds; none: an empty map, as <c>helm template</c> gets). Anything else
/// is an error, so a chart change beyond that subset fails the test instead of rendering wrongly.
/// </summary>
internal sealed partial class ChartRenderer
{
    private readonly Dictionary<string, List<Node>> _defines = new(StringComparer.Ordinal);

    private readonly IReadOnlyList<Dictionary<string, object?>> _cluster;

    private ChartRenderer(IReadOnlyList<Dictionary<string, object?>> cluster) => _cluster = cluster;

    private abstract record Node;

    private sealed record TextNode(string Text) : Node;

    private sealed record OutputNode(string Pipeline) : Node;

    private sealed record AssignNode(string Variable, string Pipeline) : Node;

    private sealed record BlockNode(string Kind, string Header, List<Node> Body, List<Node> Else) : Node;

    /// <summary>
    /// Renders every template of <paramref name="chart"/> (helpers first) with its values.yaml merged with <paramref name="overrides"/>;
    /// <c>lookup</c> finds the objects of <paramref name="cluster"/> (as <c>kubectl get -o yaml</c> gives them: plain values).
    /// </summary>
    public static IReadOnlyList<(string Template, string Output)> Render(string chart, string release, IDictionary<string, object?>? overrides = null,
        IReadOnlyList<Dictionary<string, object?>>? cluster = null)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(Path.Combine(chart, "values.yaml"))));
        var values = (Dictionary<string, object?>)FromYaml(yaml.Documents[0].RootNode)!;
        foreach (var (path, value) in overrides ?? new Dictionary<string, object?>())
        {
            var parts = path.Split('.');
            var at = values;
            foreach (var part in parts[..^1])
            {
                at = (Dictionary<string, object?>)at[part]!;
            }
            at[parts[^1]] = value;
        }
        var root = new Dictionary<string, object?>
        {
            ["Values"] = values,
            ["Release"] = new Dictionary<string, object?> { ["Name"] = release, ["Namespace"] = "default" },
        };
        var renderer = new ChartRenderer(cluster ?? []);
        var templates = Directory.GetFiles(Path.Combine(chart, "templates")).Order(StringComparer.Ordinal).ToList();
        foreach (var helper in templates.Where(t => t.EndsWith(".tpl", StringComparison.Ordinal)))
        {
            renderer.Run(renderer.Parse(File.ReadAllText(helper)), root, new Dictionary<string, object?> { ["$"] = root });
        }
        return [.. templates.Where(t => t.EndsWith(".yaml", StringComparison.Ordinal))
            .Select(t => (Path.GetFileName(t), renderer.Run(renderer.Parse(File.ReadAllText(t)), root, new Dictionary<string, object?> { ["$"] = root })))];
    }

    private string Run(List<Node> nodes, object? dot, Dictionary<string, object?> variables)
    {
        var output = new StringBuilder();
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case OutputNode action:
                    output.Append(Format(Pipeline(action.Pipeline, dot, variables)));
                    break;
                case AssignNode assign:
                    variables[assign.Variable] = Pipeline(assign.Pipeline, dot, variables);
                    break;
                case BlockNode { Kind: "if" } block:
                    output.Append(Run(Truthy(Pipeline(block.Header, dot, variables)) ? block.Body : block.Else, dot, variables));
                    break;
                case BlockNode { Kind: "with" } block:
                    var value = Pipeline(block.Header, dot, variables);
                    output.Append(Truthy(value) ? Run(block.Body, value, variables) : Run(block.Else, dot, variables));
                    break;
                case BlockNode { Kind: "range" } block:
                    string header = block.Header;
                    string[] names = [];
                    if (header.Contains(":=", StringComparison.Ordinal))
                    {
                        var parts = header.Split(":=", 2);
                        names = [.. parts[0].Split(',').Select(n => n.Trim())];
                        header = parts[1].Trim();
                    }
                    var items = Pipeline(header, dot, variables) switch
                    {
                        Dictionary<string, object?> map => map.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => ((object?)p.Key, p.Value)).ToList(),
                        List<object?> list => list.Select((v, i) => ((object?)(long)i, v)).ToList(),
                        null => [],
                        var other => throw new FormatException($"range over {other.GetType().Name}"),
                    };
                    foreach (var (key, item) in items)
                    {
                        if (names.Length == 2)
                        {
                            variables[names[0]] = key;
                            variables[names[1]] = item;
                        }
                        else if (names.Length == 1)
                        {
                            variables[names[0]] = item;
                        }
                        output.Append(Run(block.Body, item, variables));
                    }
                    if (items.Count == 0)
                    {
                        output.Append(Run(block.Else, dot, variables));
                    }
                    break;
                default:
                    throw new FormatException($"Unknown node {node}.");
            }
        }
        return output.ToString();
    }

    private object? Pipeline(string pipeline, object? dot, Dictionary<string, object?> variables)
    {
        object? result = null;
        bool first = true;
        foreach (string command in SplitOutside(pipeline, '|'))
        {
            var terms = Terms(command.Trim());
            var args = terms.Skip(1).Select(t => Term(t, dot, variables)).ToList();
            if (!first)
            {
                args.Add(result);
            }
            result = IsFunction(terms[0]) ? Call(terms[0], args, dot, variables) : terms.Count == 1 && first ? Term(terms[0], dot, variables)
                : throw new FormatException($"'{terms[0]}' is not a function");
            first = false;
        }
        return result;
    }

    private static bool IsFunction(string term) => char.IsLetter(term[0]);

    private object? Term(string term, object? dot, Dictionary<string, object?> variables)
    {
        if (term.StartsWith('(') && term.EndsWith(')'))
        {
            return Pipeline(term[1..^1], dot, variables);
        }
        if (term.StartsWith('"'))
        {
            return Unquote(term);
        }
        if (long.TryParse(term, NumberStyles.Integer, CultureInfo.InvariantCulture, out long number))
        {
            return number;
        }
        if (term == ".")
        {
            return dot;
        }
        object? value;
        string path;
        if (term.StartsWith('$'))
        {
            int dotAt = term.IndexOf('.', StringComparison.Ordinal);
            string name = dotAt < 0 ? term : term[..dotAt];
            value = variables.TryGetValue(name, out var v) ? v : throw new FormatException($"undefined variable {name}");
            path = dotAt < 0 ? "" : term[(dotAt + 1)..];
        }
        else if (term.StartsWith('.'))
        {
            value = dot;
            path = term[1..];
        }
        else
        {
            throw new FormatException($"'{term}' is not a value");
        }
        foreach (string field in path.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            value = value is Dictionary<string, object?> map ? map.GetValueOrDefault(field) : null;
        }
        return value;
    }

    private object? Call(string name, List<object?> args, object? dot, Dictionary<string, object?> variables) => name switch
    {
        "include" => Run(_defines.TryGetValue((string)args[0]!, out var body) ? body : throw new FormatException($"no template '{args[0]}'"), args[1], new() { ["$"] = variables["$"] }),
        "toYaml" => new SerializerBuilder().Build().Serialize(args[0] ?? "").TrimEnd('\n'),
        "nindent" => "\n" + Indent((long)args[0]!, Format(args[1])),
        "indent" => Indent((long)args[0]!, Format(args[1])),
        "quote" => "\"" + Format(args[0]).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
        "printf" => Printf(Format(args[0]), args.Skip(1).ToList()),
        "until" => Enumerable.Range(0, checked((int)(long)args[0]!)).Select(i => (object?)(long)i).ToList(),
        "int" => args[0] switch { long l => l, string s => long.Parse(s, CultureInfo.InvariantCulture), var o => Convert.ToInt64(o, CultureInfo.InvariantCulture) },
        "not" => !Truthy(args[0]),
        "randAlphaNum" => new string([.. Enumerable.Range(0, checked((int)(long)args[0]!)).Select(_ => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[Random.Shared.Next(62)])]),
        "b64enc" => Convert.ToBase64String(Encoding.UTF8.GetBytes(Format(args[0]))),
        "lookup" => Lookup(Format(args[0]), Format(args[1]), Format(args[2]), Format(args[3])),
        _ => throw new FormatException($"function '{name}' is not supported by this renderer"),
    };

    /// <summary>Helm's <c>lookup</c> of one object: the cluster's object of that apiVersion, kind, namespace and name, else an empty map.</summary>
    private Dictionary<string, object?> Lookup(string apiVersion, string kind, string @namespace, string name)
    {
        if (name.Length == 0)
        {
            throw new FormatException("lookup of every object of a kind (no name) is not supported by this renderer");
        }
        foreach (var item in _cluster)
        {
            if ((string?)item.GetValueOrDefault("apiVersion") == apiVersion && (string?)item.GetValueOrDefault("kind") == kind
                && item.GetValueOrDefault("metadata") is Dictionary<string, object?> metadata
                && (string?)metadata.GetValueOrDefault("namespace") == @namespace && (string?)metadata.GetValueOrDefault("name") == name)
            {
                return item;
            }
        }
        return new Dictionary<string, object?>(StringComparer.Ordinal);
    }

    private static string Printf(string format, List<object?> args)
    {
        var output = new StringBuilder();
        int next = 0;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] == '%' && i + 1 < format.Length && format[i + 1] is 's' or 'd' or 'v')
            {
                output.Append(Format(args[next++]));
                i++;
            }
            else
            {
                output.Append(format[i]);
            }
        }
        return output.ToString();
    }

    private static string Indent(long spaces, string text)
    {
        string pad = new(' ', checked((int)spaces));
        return string.Join('\n', text.Split('\n').Select(line => pad + line));
    }

    private static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        string s => s.Length > 0,
        Dictionary<string, object?> map => map.Count > 0,
        List<object?> list => list.Count > 0,
        _ => true,
    };

    private static string Format(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString(CultureInfo.InvariantCulture),
        string s => s,
        _ => throw new FormatException($"cannot print a {value.GetType().Name} (use toYaml)"),
    };

    /// <summary>A YAML node as plain values: maps, lists, and scalars typed as YAML's core schema types them (plain true/false, integers).</summary>
    public static object? FromYaml(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => FromYaml(p.Value), StringComparer.Ordinal),
        YamlSequenceNode list => list.Children.Select(FromYaml).ToList(),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: "true" } => true,
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: "false" } => false,
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: "null" or "~" or "" } => null,
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } scalar when long.TryParse(scalar.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
        YamlScalarNode scalar => scalar.Value,
        _ => throw new FormatException($"Unexpected YAML node {node.NodeType}."),
    };
}
