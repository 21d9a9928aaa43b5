using System.Diagnostics;
using System.Text.Json;

namespace Inference.Testing;

/// <summary>
/// The model-exchange fixtures in tests/fixtures/pytorch (written by real PyTorch with make_fixtures.py
/// beside them) and, where one is installed, a Python with PyTorch to read what the engine exports.
/// </summary>
public static class PyTorchFixtures
{
    public static string Directory => Path.Combine(Repository.Root, "tests", "fixtures", "pytorch");

    public static string File(string name) => Path.Combine(Directory, name);

    /// <summary>The fixed inputs (rows × 5) and each model's probabilities on them, as PyTorch computed them.</summary>
    public static (float[][] Inputs, Dictionary<string, ExpectedModel> Models) Expected()
    {
        using var document = JsonDocument.Parse(System.IO.File.ReadAllText(File("expected.json")));
        var root = document.RootElement;
        var inputs = root.GetProperty("inputs").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var models = new Dictionary<string, ExpectedModel>();
        foreach (var model in root.GetProperty("models").EnumerateObject())
        {
            var m = model.Value;
            models[model.Name] = new ExpectedModel(
                m.GetProperty("file").GetString()!,
                m.GetProperty("kind").GetString()!,
                m.GetProperty("hidden").GetInt32(),
                m.GetProperty("standardisation").GetBoolean(),
                m.GetProperty("probabilities").EnumerateArray().Select(v => v.GetDouble()).ToArray());
        }
        return (inputs, models);
    }

    /// <summary>A Python interpreter that imports torch, or null (Debian: apt-get install python3-torch; .ci/run installs it).</summary>
    public static string? Python()
    {
        foreach (string candidate in new[] { "/usr/bin/python3", "python3" })
        {
            try
            {
                var (code, _) = RunPython(candidate, "-c", "import torch");
                if (code == 0)
                {
                    return candidate;
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Not installed under that name.
            }
        }
        return null;
    }

    /// <summary>PyTorch's probabilities on the fixture inputs for a model file the engine wrote (score.py).</summary>
    public static double[] ScoreInPyTorch(string python, string modelFile)
    {
        var (code, output) = RunPython(python, File("score.py"), modelFile);
        if (code != 0)
        {
            throw new InvalidOperationException($"score.py failed ({code}): {output}");
        }
        return JsonSerializer.Deserialize<double[]>(output.Trim().Split('\n')[^1])!;
    }

    /// <summary>A Python with PyTorch and xxhash (what a model over ids needs to hash its ids as the engine does), or null.</summary>
    public static string? PythonWithXxhash() =>
        Python() is { } python && RunPython(python, "-c", "import xxhash").Code == 0 ? python : null;

    /// <summary>PyTorch's probabilities for rows of model inputs and ids (score_ids.py), with a model over ids the engine exported.</summary>
    public static double[] ScoreIdsInPyTorch(string python, string modelFile, float[][] inputs, IReadOnlyDictionary<string, string[]> ids)
    {
        string rows = Path.Combine(Path.GetTempPath(), $"rows-{Guid.NewGuid():N}.json");
        System.IO.File.WriteAllText(rows, JsonSerializer.Serialize(new { x = inputs, ids }));
        try
        {
            var (code, output) = RunPython(python, File("score_ids.py"), modelFile, rows);
            if (code != 0)
            {
                throw new InvalidOperationException($"score_ids.py failed ({code}): {output}");
            }
            return JsonSerializer.Deserialize<double[]>(output.Trim().Split('\n')[^1])!;
        }
        finally
        {
            System.IO.File.Delete(rows);
        }
    }

    private static (int Code, string Output) RunPython(string python, params string[] args)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{python} {string.Join(' ', args)} did not finish in 120 s.");
        }
        return (process.ExitCode, process.ExitCode == 0 ? output : output + error.GetAwaiter().GetResult());
    }
}

/// <summary>One fixture model: its file, kind, hidden units (0 for logistic), whether it carries a standardisation, and PyTorch's probabilities.</summary>
public sealed record ExpectedModel(string File, string Kind, int Hidden, bool Standardisation, double[] Probabilities);
