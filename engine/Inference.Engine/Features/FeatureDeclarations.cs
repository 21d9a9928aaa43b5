using System.Text.Json;
using System.Text.Json.Serialization;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>Where the declared features come from: a file (<c>--features</c>), the configuration, or the defaults.</summary>
internal static class FeatureDeclarations
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public static void Resolve(FeatureOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.File))
        {
            options.Definitions = Load(options.File);
        }
        if (options.Definitions.Count == 0)
        {
            options.Definitions = FeatureOptions.DefaultDefinitions();
        }
    }

    /// <summary>Reads a JSON array of declarations, or an object with a "Definitions" array; errors name the file.</summary>
    public static List<FeatureDefinition> Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(FeatureOptions.Section, typeof(FeatureOptions),
                [$"Inference:Features:File: cannot read '{path}': {error.Message}"]);
        }
        try
        {
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in root.EnumerateObject())
                {
                    if (string.Equals(property.Name, "Definitions", StringComparison.OrdinalIgnoreCase))
                    {
                        root = property.Value;
                    }
                }
            }
            return root.Deserialize<List<FeatureDefinition>>(Json) ?? [];
        }
        catch (JsonException error)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(FeatureOptions.Section, typeof(FeatureOptions),
                [$"Inference:Features:File: '{path}' is not a list of feature declarations: {error.Message}"]);
        }
    }
}
