using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Inference.Acceptance.Tests;

/// <summary>
/// A real headless Chromium driven over the DevTools protocol (a WebSocket): open a page, read values
/// with JavaScript in real time, collect every console message, exception and log entry, screenshot.
/// </summary>
internal sealed partial class HeadlessChromium : IAsyncDisposable
{
    private readonly Process _browser;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonNode>> _calls = new();
    private readonly CancellationTokenSource _stop = new();
    private int _next;
    private Task _reader = Task.CompletedTask;

    private HeadlessChromium(Process browser, string profile)
    {
        _browser = browser;
        _profile = profile;
    }

    /// <summary>Console messages, uncaught exceptions and browser log entries (failed loads), as text.</summary>
    public ConcurrentQueue<string> Messages { get; } = new();

    public static string? Find() => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    public static async Task<HeadlessChromium> OpenAsync(string executable, string url, int width = 1400, int height = 1000)
    {
        string profile = Directory.CreateTempSubdirectory("inference-chromium-").FullName;
        var start = new ProcessStartInfo(executable) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string arg in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-port=0",
            $"--user-data-dir={profile}", $"--window-size={width},{height}", "about:blank" })
        {
            start.ArgumentList.Add(arg);
        }
        var browser = Process.Start(start)!;
        var chromium = new HeadlessChromium(browser, profile);
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        string? endpoint = null;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (endpoint is null && DateTime.UtcNow < deadline)
        {
            string? line = await browser.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            if (line is null)
            {
                break;
            }
            var match = DevTools().Match(line);
            if (match.Success)
            {
                endpoint = match.Groups[1].Value;
            }
        }
        if (endpoint is null)
        {
            await chromium.DisposeAsync();
            throw new InvalidOperationException("Chromium did not open its DevTools endpoint.");
        }
        _ = browser.StandardError.ReadToEndAsync();
        using var http = new HttpClient();
        var targets = JsonNode.Parse(await http.GetStringAsync($"http://{endpoint}/json/list"))!.AsArray();
        string page = targets.First(t => (string?)t!["type"] == "page")!["webSocketDebuggerUrl"]!.GetValue<string>();
        await chromium._socket.ConnectAsync(new Uri(page), CancellationToken.None);
        chromium._reader = chromium.ReadAsync();
        await chromium.CallAsync("Runtime.enable");
        await chromium.CallAsync("Log.enable");
        await chromium.CallAsync("Page.enable");
        await chromium.CallAsync("Page.navigate", new JsonObject { ["url"] = url });
        return chromium;
    }

    /// <summary>Evaluates a JavaScript expression in the page and returns its value (JSON).</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await CallAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
        return result["result"]?["value"];
    }

    public async Task ScreenshotAsync(string path)
    {
        var result = await CallAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
        await File.WriteAllBytesAsync(path, Convert.FromBase64String(result["data"]!.GetValue<string>()));
    }

    private async Task<JsonNode> CallAsync(string method, JsonObject? parameters = null)
    {
        int id = Interlocked.Increment(ref _next);
        var done = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        _calls[id] = done;
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        return await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private async Task ReadAsync()
    {
        var buffer = new byte[1 << 20];
        var text = new MemoryStream();
        try
        {
            while (_socket.State == WebSocketState.Open)
            {
                var received = await _socket.ReceiveAsync(buffer, _stop.Token);
                text.Write(buffer, 0, received.Count);
                if (!received.EndOfMessage)
                {
                    continue;
                }
                var message = JsonNode.Parse(text.ToArray())!;
                text.SetLength(0);
                if (message["id"] is { } id && _calls.TryRemove(id.GetValue<int>(), out var call))
                {
                    if (message["error"] is { } error)
                    {
                        call.SetException(new InvalidOperationException(error.ToJsonString()));
                    }
                    else
                    {
                        call.SetResult(message["result"]!);
                    }
                    continue;
                }
                switch ((string?)message["method"])
                {
                    case "Runtime.consoleAPICalled":
                        var args = message["params"]!["args"]!.AsArray().Select(a => a?["value"]?.ToString() ?? a?["description"]?.ToString());
                        Messages.Enqueue($"console.{message["params"]!["type"]}: {string.Join(' ', args)}");
                        break;
                    case "Runtime.exceptionThrown":
                        Messages.Enqueue($"exception: {message["params"]!["exceptionDetails"]!.ToJsonString()}");
                        break;
                    case "Log.entryAdded":
                        var entry = message["params"]!["entry"]!;
                        Messages.Enqueue($"log.{entry["level"]}: {entry["text"]} {entry["url"]}");
                        break;
                }
            }
        }
        catch (Exception error) when (error is OperationCanceledException or WebSocketException)
        {
            // Closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _reader;
        }
        catch (OperationCanceledException)
        {
        }
        _socket.Dispose();
        if (!_browser.HasExited)
        {
            _browser.Kill(entireProcessTree: true);
        }
        await _browser.WaitForExitAsync();
        _browser.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
            // Chromium may still be letting go of a file; the temp folder is cleaned up later.
        }
        _stop.Dispose();
    }

    [GeneratedRegex(@"DevTools listening on ws://([^/]+)/")]
    private static partial Regex DevTools();
}
