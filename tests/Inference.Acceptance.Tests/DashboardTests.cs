using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Inference.Acceptance.Tests;

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
            // Past the start: the demo answers ready once its group is assigned and the stream is applied.
            using (var http = new HttpClient())
            {
                string ready = new Uri(dashboard!).GetLeftPart(UriPartial.Authority) + "/readyz";
                await EngineHarness.WaitUntilAsync(async () => !demo.HasExited && (await http.GetAsync(ready)).IsSuccessStatusCode, TimeSpan.FromSeconds(60),
                    () => demo.HasExited ? $"the demo exited ({demo.ExitCode})" : $"{ready} to answer 200");
            }

            await using var browser = await HeadlessChromium.OpenAsync(chromium!, dashboard!);
            string[] tiles = ["events-per-second", "lag", "score-p50", "score-p99", "model-version", "online-loss", "validation-auc", "scores-per-second"];
            static bool Filled(Page page) => page.Values.GetValueOrDefault("status") == "live";
            var first = await ReadWhenAsync(browser, page => Filled(page) && tiles.All(id => page.Values.GetValueOrDefault(id, "–") != "–"), TimeSpan.FromSeconds(60),
                "every tile to show a value and the status to read 'live'");
            var second = await ReadWhenAsync(browser, page => page.Values["updated"] != first.Values["updated"] && page.Points >= first.Points + 2
                && (page.Values["model-version"] != first.Values["model-version"] || page.Values["events-per-second"] != first.Values["events-per-second"]), TimeSpan.FromSeconds(30),
                "the page to update: a new time, two more chart points, and a new model version or events/s");
            Assert.True(browser.Messages.IsEmpty, $"the page logged:\n{string.Join('\n', browser.Messages)}");
            foreach (var page in new[] { first, second })
            {
                foreach (string id in tiles)
                {
                    Assert.True(page.Values.TryGetValue(id, out string? value) && value != "–", $"tile {id} shows '{page.Values.GetValueOrDefault(id)}' (page: {string.Join(", ", page.Values)}; messages: {string.Join(" / ", browser.Messages)})");
                }
                Assert.Equal("live", page.Values["status"]);
            }
            output.WriteLine($"first: {string.Join(", ", first.Values)}; {first.Points} points, {first.AlertRows} alerts");
            output.WriteLine($"second: {string.Join(", ", second.Values)}; {second.Points} points, {second.AlertRows} alerts");
            if (Environment.GetEnvironmentVariable("INFERENCE_DASHBOARD_SCREENSHOT") is { Length: > 0 } screenshot)
            {
                // How docs/dashboard.png is made: INFERENCE_DASHBOARD_SCREENSHOT=docs/dashboard.png (a path) for this test.
                await ReadWhenAsync(browser, page => page.Points >= second.Points + 20, TimeSpan.FromSeconds(60), "twenty more chart points for the picture");
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

    /// <summary>Reads the page until it shows what <paramref name="ready"/> wants, failing with <paramref name="what"/> and the last read.</summary>
    private static async Task<Page> ReadWhenAsync(HeadlessChromium browser, Func<Page, bool> ready, TimeSpan timeout, string what)
    {
        Page page = await ReadAsync(browser);
        await EngineHarness.WaitUntilAsync(async () => ready(page = await ReadAsync(browser)), timeout,
            () => $"{what} (last read: {string.Join(", ", page.Values)}; {page.Points} points; messages: {string.Join(" / ", browser.Messages)})");
        return page;
    }

    /// <summary>The tiles' text, the points charted and the alert rows, read in the page.</summary>
    private static async Task<Page> ReadAsync(HeadlessChromium browser)
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
        return new Page(values, points, root.GetProperty("alerts").GetInt32());
    }

    /// <summary>What the page shows: the tiles' text, the points charted, the alert rows.</summary>
    private sealed record Page(Dictionary<string, string> Values, int Points, int AlertRows);

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
