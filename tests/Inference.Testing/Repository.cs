namespace Inference.Testing;

/// <summary>Files of the repository the tests and benchmarks run from.</summary>
public static class Repository
{
    /// <summary>The repository's root (the folder holding Inference.sln) above the running program.</summary>
    public static string Root
    {
        get
        {
            var root = new DirectoryInfo(AppContext.BaseDirectory);
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "Inference.sln")))
            {
                root = root.Parent;
            }
            return root?.FullName ?? throw new InvalidOperationException($"No Inference.sln above {AppContext.BaseDirectory}.");
        }
    }

    /// <summary>The settings `inference serve` ships with (engine/Inference.Host/appsettings.json).</summary>
    public static string HostSettings => Path.Combine(Root, "engine", "Inference.Host", "appsettings.json");
}
