using Inference.Testing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Inference.Engine.Tests;

/// <summary>
/// How each type of the product reads: its state (instance and static fields) together at the top, before
/// its constructors, properties and methods. Constants are named values, not state: one may stand beside
/// the option or method it names (a default next to its option).
/// </summary>
public sealed class SourceShapeTests
{
    [Fact]
    public void Every_type_declares_its_fields_together_at_the_top()
    {
        var scattered = new List<string>();
        foreach (var file in new[] { "engine", "kernels", "models", "proto" }.SelectMany(folder => ProductFiles(Path.Combine(Repository.Root, folder))))
        {
            var tree = CSharpSyntaxTree.ParseText(File.ReadAllText(file));
            foreach (var type in tree.GetRoot().DescendantNodes().OfType<TypeDeclarationSyntax>())
            {
                // Nested types may stand anywhere; every other member after a field that follows it is out of place.
                var members = type.Members.Where(member => member is not BaseTypeDeclarationSyntax and not DelegateDeclarationSyntax && !IsConstant(member)).ToList();
                int firstOther = members.FindIndex(member => member is not FieldDeclarationSyntax);
                if (firstOther < 0)
                {
                    continue;
                }
                foreach (var field in members.Skip(firstOther).OfType<FieldDeclarationSyntax>())
                {
                    int line = field.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                    scattered.Add($"{Path.GetRelativePath(Repository.Root, file)}:{line}: {type.Identifier.Text}.{field.Declaration.Variables[0].Identifier.Text}");
                }
            }
        }
        Assert.True(scattered.Count == 0, $"Fields declared after other members (move them to the top of their type):\n{string.Join("\n", scattered)}");
    }

    /// <summary>
    /// Clocks and timers go through a <see cref="TimeProvider"/> (a test can drive them), and no thread
    /// blocks on a task: a dedicated thread waits on an event, everything else awaits.
    /// </summary>
    [Fact]
    public void Clocks_and_timers_go_through_a_time_provider_and_no_thread_blocks_on_a_task()
    {
        string[] clocks = ["DateTime.UtcNow", "DateTime.Now", "DateTimeOffset.UtcNow", "DateTimeOffset.Now", "Environment.TickCount", "Environment.TickCount64", "Thread.Sleep"];
        string[] timers = ["Timer", "System.Threading.Timer", "PeriodicTimer"];
        var found = new List<string>();
        foreach (var file in new[] { "engine", "kernels", "models", "proto" }.SelectMany(folder => ProductFiles(Path.Combine(Repository.Root, folder))))
        {
            var root = CSharpSyntaxTree.ParseText(File.ReadAllText(file)).GetRoot();
            void Found(SyntaxNode node, string what) =>
                found.Add($"{Path.GetRelativePath(Repository.Root, file)}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {what}");
            foreach (var access in root.DescendantNodes().OfType<MemberAccessExpressionSyntax>())
            {
                string text = access.ToString();
                if (clocks.Contains(text) || access.Expression.ToString() is "Stopwatch" or "System.Diagnostics.Stopwatch")
                {
                    Found(access, text);
                }
                if (access.Name.Identifier.Text == "GetResult" && access.Expression is InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.Text: "GetAwaiter" } })
                {
                    Found(access, "GetAwaiter().GetResult() blocks on a task");
                }
                if (text == "Task.Delay" && access.Parent is InvocationExpressionSyntax delay
                    && !delay.ArgumentList.Arguments.Any(argument => argument.Expression is IdentifierNameSyntax { Identifier.Text: "time" or "_time" or "Clock" } or MemberAccessExpressionSyntax { Name.Identifier.Text: "Time" or "Clock" }))
                {
                    Found(access, "Task.Delay without a TimeProvider");
                }
            }
            foreach (var creation in root.DescendantNodes().OfType<ObjectCreationExpressionSyntax>())
            {
                if (timers.Contains(creation.Type.ToString()))
                {
                    Found(creation, $"new {creation.Type} (use TimeProvider.CreateTimer)");
                }
            }
        }
        Assert.True(found.Count == 0, $"Clock reads, timers or blocking waits outside TimeProvider:\n{string.Join("\n", found.Distinct())}");
    }

    /// <summary>
    /// The engine's public surface is what a host needs: composing it (<c>AddInference</c>, its builder, the
    /// application), its options and the types they hold, and the errors a start reports. The rest is internal.
    /// </summary>
    [Fact]
    public void The_engine_exports_only_what_a_host_needs()
    {
        string[] expected =
        [
            "AlertOptions", "AlertRule", "CheckpointException", "CheckpointOptions", "ClientCertificates", "ClientSecurityOptions", "DecodeError",
            "EngineRole", "EventFormat", "FeatureOptions", "GatherLimits", "IdInputOptions", "IdSource", "IInferenceBuilder", "InferenceApplication", "InferenceOptions",
            "InferenceServiceCollectionExtensions", "KafkaOptions", "ModelOptions", "OutputFormat", "ScopedToken", "ScoreOutputOptions",
            "SecurityOptions", "ServingOptions", "SyncOptions", "TlsOptions", "TrainingOptions", "WebhookOptions", "WeightMerge",
        ];
        var exported = typeof(Hosting.InferenceApplication).Assembly.GetExportedTypes().Where(type => !type.IsNested).Select(type => type.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected.Order(StringComparer.Ordinal), exported);
    }

    private static bool IsConstant(MemberDeclarationSyntax member) =>
        member is FieldDeclarationSyntax field && field.Modifiers.Any(modifier => modifier.IsKind(SyntaxKind.ConstKeyword));

    private static IEnumerable<string> ProductFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
}
