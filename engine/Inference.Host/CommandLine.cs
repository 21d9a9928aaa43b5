using System.Globalization;

namespace Inference.Host;

internal sealed class CommandLineException(string message) : Exception(message);

/// <summary>"--name value" pairs of the demo and dev-kafka commands.</summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string> _values;

    private CommandLine(Dictionary<string, string> values)
    {
        _values = values;
    }

    public static CommandLine Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new CommandLineException($"Unexpected argument '{arg}'.");
            }
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                values[arg[2..equals]] = arg[(equals + 1)..];
            }
            else if (i + 1 < args.Length)
            {
                values[arg[2..]] = args[++i];
            }
            else
            {
                throw new CommandLineException($"Option '{arg}' needs a value.");
            }
        }
        return new CommandLine(values);
    }

    public string? String(string name) => _values.GetValueOrDefault(name);

    public int Int(string name, int fallback, int min, int max)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback;
        }
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
        {
            throw new CommandLineException($"--{name} must be a whole number between {min} and {max} (got '{text}').");
        }
        return value;
    }

    /// <summary>"90", "90s", "5m", "1h" or "00:01:30".</summary>
    public TimeSpan? Duration(string name)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return null;
        }
        double factor = 1;
        string number = text;
        if (text.EndsWith('s'))
        {
            number = text[..^1];
        }
        else if (text.EndsWith('m'))
        {
            number = text[..^1];
            factor = 60;
        }
        else if (text.EndsWith('h'))
        {
            number = text[..^1];
            factor = 3600;
        }
        if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0)
        {
            return TimeSpan.FromSeconds(seconds * factor);
        }
        if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero)
        {
            return span;
        }
        throw new CommandLineException($"--{name} must be a duration such as 30s, 5m or 00:01:30 (got '{text}').");
    }
}
