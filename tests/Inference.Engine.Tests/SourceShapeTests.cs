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

    private static bool IsConstant(MemberDeclarationSyntax member) =>
        member is FieldDeclarationSyntax field && field.Modifiers.Any(modifier => modifier.IsKind(SyntaxKind.ConstKeyword));

    private static IEnumerable<string> ProductFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
}
