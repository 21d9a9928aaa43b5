using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// The dashboard in a real headless Chromium (Debian's <c>chromium</c>; <c>.ci/run</c> installs it), driven
/// over the DevTools protocol while <c>inference demo</c> runs: the page loads with no console message,
/// exception or failed load at all, and its numbers and charts move as the stream goes on.
/// </summary>
[Collection(nameof(CrashTests))]
public sealed partial class DashboardTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task The_dashboard_loads_without_console_errors_and_its_numbers_move_while_the_demo_runs()
    {
        string? chromium = HeadlessChromium.Find();
        Skip.If(chromium is null, "needs Chromium (Debian: apt-get install chromium; .ci/run installs it)");

        var start = EngineProcess.Command(["demo", "--duration", "90s", "--rate", "10000", "--port", "0", "--http-port", "0"]);
        using var demo = Process.Start(start)!;
        var error = demo.StandardError.ReadToEndAsync();
        string? dashboard = null;
        string? alerts = null;
        try
        {
            // The demo prints its URLs before the stream starts.
            while (dashboard is null || alerts is null)
            {
                string? line = await demo.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
                if (line is null)
                {
                    Assert.Fail($"the demo ended before printing its URLs: {await error}");
                }
                var url = Url().Match(line);
                if (line.TrimStart().StartsWith("dashboard", StringComparison.Ordinal) && url.Success)
                {
                    dashboard = url.Value;
                }
                else if (line.TrimStart().StartsWith("alerts", StringComparison.Ordinal) && url.Success)
                {
                    alerts = url.Value;
                }
            }
            output.WriteLine($"dashboard {dashboard}, alerts {alerts}");
            Assert.EndsWith("/alerts/stream", alerts);
            var rest = DrainAsync(demo.StandardOutput);
            // Past the start: the group is assigned and events flow.
            await Task.Delay(TimeSpan.FromSeconds(8));

            if (demo.HasExited)
            {
                Assert.Fail($"the demo exited ({demo.ExitCode}): {await rest}{await error}");
            }
            await using var browser = await HeadlessChromium.OpenAsync(chromium!, dashboard);
            await Task.Delay(TimeSpan.FromSeconds(4));
            var first = await ReadAsync(browser);
            await Task.Delay(TimeSpan.FromSeconds(3));
            var second = await ReadAsync(browser);
            Assert.True(browser.Messages.IsEmpty, $"the page logged:\n{string.Join('\n', browser.Messages)}");
            foreach (var page in new[] { first, second })
            {
                foreach (string id in new[] { "events-per-second", "lag", "score-p50", "score-p99", "model-version", "online-loss", "scores-per-second" })
                {
                    Assert.True(page.Values.TryGetValue(id, out string? value) && value != "–", $"tile {id} shows '{page.Values.GetValueOrDefault(id)}' (page: {string.Join(", ", page.Values)}; messages: {string.Join(" / ", browser.Messages)})");
                }
                Assert.Equal("live", page.Values["status"]);
            }
            output.WriteLine($"first: {string.Join(", ", first.Values)}; {first.Points} points, {first.AlertRows} alerts");
            output.WriteLine($"second: {string.Join(", ", second.Values)}; {second.Points} points, {second.AlertRows} alerts");
            Assert.NotEqual(first.Values["updated"], second.Values["updated"]);
            Assert.True(second.Points >= first.Points + 2, $"the charts went from {first.Points} to {second.Points} points in 3 s");
            Assert.True(first.Values["model-version"] != second.Values["model-version"] || first.Values["events-per-second"] != second.Values["events-per-second"],
                "neither the model version nor events/s changed in 3 s");
            if (Environment.GetEnvironmentVariable("INFERENCE_DASHBOARD_SCREENSHOT") is { Length: > 0 } screenshot)
            {
                // How docs/dashboard.png is made: INFERENCE_DASHBOARD_SCREENSHOT=docs/dashboard.png (a path) for this test.
                await Task.Delay(TimeSpan.FromSeconds(20));
                await browser.ScreenshotAsync(screenshot);
            }
            // Alerts come once the model has learned to give scores above the demo's threshold.
            var alerted = DateTime.UtcNow.AddSeconds(60);
            int rows = second.AlertRows;
            while (rows == 0 && DateTime.UtcNow < alerted)
            {
                await Task.Delay(1_000);
                rows = (await ReadAsync(browser)).AlertRows;
            }
            Assert.True(rows > 0, "no alert reached the table within a minute");
            Assert.True(browser.Messages.IsEmpty, $"the page logged:\n{string.Join('\n', browser.Messages)}");
        }
        finally
        {
            if (!demo.HasExited)
            {
                demo.Kill(entireProcessTree: true);
            }
            await demo.WaitForExitAsync();
        }
    }

    /// <summary>The tiles' text, the points charted and the alert rows, read in the page.</summary>
    private static async Task<(Dictionary<string, string> Values, int Points, int AlertRows)> ReadAsync(HeadlessChromium browser)
    {
        var state = await browser.EvaluateAsync(
            "JSON.stringify({ values: Object.fromEntries([...document.querySelectorAll('[id]')].filter(e => e.children.length === 0).map(e => [e.id, e.textContent.trim()])),"
            + " alerts: document.querySelectorAll('#alerts td.score').length, location: location.href, title: document.title })");
        using var json = System.Text.Json.JsonDocument.Parse(state!.GetValue<string>());
        var root = json.RootElement;
        var values = root.GetProperty("values").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
        values["location"] = root.GetProperty("location").GetString() ?? "";
        values["title"] = root.GetProperty("title").GetString() ?? "";
        int points = await browser.EvaluateAsync("window.inferenceDashboard ? window.inferenceDashboard.points() : -1") is { } n ? n.GetValue<int>() : -1;
        return (values, points, root.GetProperty("alerts").GetInt32());
    }

    private static async Task<string> DrainAsync(StreamReader reader)
    {
        var lines = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            lines.Add(line);
        }
        return string.Join('\n', lines.TakeLast(30));
    }

    [GeneratedRegex(@"http://[0-9.:]+[^\s]*")]
    private static partial Regex Url();

}
