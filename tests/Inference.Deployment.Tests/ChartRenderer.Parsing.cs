
namespace Inference.Deployment.Tests;

/// <summary>The renderer's parsing: a template into text, output, assignment and block nodes, and an action into its terms.</summary>
internal sealed partial class ChartRenderer
{
    /// <summary>Parses template text into nodes; <c>define</c> blocks are kept by name.</summary>
    private List<Node> Parse(string text)
    {
        // Split into text and actions, applying {{- and -}} trimming.
        var pieces = new List<(bool Action, string Text)>();
        int at = 0;
        while (at < text.Length)
        {
            int open = text.IndexOf("{{", at, StringComparison.Ordinal);
            if (open < 0)
            {
                pieces.Add((false, text[at..]));
                break;
            }
            int close = text.IndexOf("}}", open, StringComparison.Ordinal);
            string before = text[at..open];
            string action = text[(open + 2)..close];
            if (action.StartsWith('-'))
            {
                before = before.TrimEnd();
                action = action[1..];
            }
            bool trimAfter = action.EndsWith('-');
            if (trimAfter)
            {
                action = action[..^1];
            }
            pieces.Add((false, before));
            pieces.Add((true, action.Trim()));
            at = close + 2;
            if (trimAfter)
            {
                while (at < text.Length && char.IsWhiteSpace(text[at]))
                {
                    at++;
                }
            }
        }
        int index = 0;
        var nodes = ParseBlock(pieces, ref index, out string? end);
        if (end is not null)
        {
            throw new FormatException($"Unexpected {{{{{end}}}}}.");
        }
        return nodes;
    }

    private List<Node> ParseBlock(List<(bool Action, string Text)> pieces, ref int index, out string? end)
    {
        var nodes = new List<Node>();
        while (index < pieces.Count)
        {
            var (action, text) = pieces[index++];
            if (!action)
            {
                if (text.Length > 0)
                {
                    nodes.Add(new TextNode(text));
                }
                continue;
            }
            string keyword = text.Split(' ', 2)[0];
            string rest = text.Length > keyword.Length ? text[keyword.Length..].Trim() : "";
            switch (keyword)
            {
                case "end":
                case "else":
                    end = keyword;
                    return nodes;
                case "if":
                case "with":
                case "range":
                case "define":
                    var body = ParseBlock(pieces, ref index, out string? closer);
                    var otherwise = new List<Node>();
                    if (closer == "else")
                    {
                        otherwise = ParseBlock(pieces, ref index, out closer);
                    }
                    if (closer != "end")
                    {
                        throw new FormatException($"{{{{{keyword} {rest}}}}} is not closed.");
                    }
                    if (keyword == "define")
                    {
                        _defines[Unquote(rest)] = body;
                    }
                    else
                    {
                        nodes.Add(new BlockNode(keyword, rest, body, otherwise));
                    }
                    break;
                default:
                    if (text.StartsWith('$') && text.Contains(":=", StringComparison.Ordinal))
                    {
                        var parts = text.Split(":=", 2);
                        nodes.Add(new AssignNode(parts[0].Trim(), parts[1].Trim()));
                    }
                    else
                    {
                        nodes.Add(new OutputNode(text));
                    }
                    break;
            }
        }
        end = null;
        return nodes;
    }

    private static string Unquote(string text) => text.Trim().Trim('"');

    /// <summary>The terms of a command: words, quoted strings and parenthesised pipelines.</summary>
    private static List<string> Terms(string command)
    {
        var terms = new List<string>();
        int i = 0;
        while (i < command.Length)
        {
            if (char.IsWhiteSpace(command[i]))
            {
                i++;
                continue;
            }
            int start = i;
            if (command[i] == '"')
            {
                i = command.IndexOf('"', i + 1) + 1;
            }
            else if (command[i] == '(')
            {
                int depth = 0;
                do
                {
                    depth += command[i] == '(' ? 1 : command[i] == ')' ? -1 : 0;
                    i++;
                }
                while (depth > 0);
            }
            else
            {
                while (i < command.Length && !char.IsWhiteSpace(command[i]))
                {
                    i++;
                }
            }
            terms.Add(command[start..i]);
        }
        return terms;
    }

    private static IEnumerable<string> SplitOutside(string text, char separator)
    {
        int depth = 0;
        bool quoted = false;
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            quoted ^= c == '"';
            depth += quoted ? 0 : c == '(' ? 1 : c == ')' ? -1 : 0;
            if (c == separator && depth == 0 && !quoted)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }
        yield return text[start..];
    }
}
