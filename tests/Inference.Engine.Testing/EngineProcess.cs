using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Inference.Testing;

namespace Inference.Engine.Testing;

/// <summary>
/// <c>inference serve</c> as a child process, as an operator runs it: its own process, configured by
/// command-line switches, reached over gRPC on loopback, stopped by a signal (SIGTERM: graceful;
/// SIGKILL: a crash). Its output goes to a log file the test can show when it fails.
/// </summary>
internal sealed partial class EngineProcess : IDisposable
{
    private readonly Process _process;

    private EngineProcess(Process process, int port, string log)
    {
        _process = process;
        Port = port;
        Log = log;
        Address = $"http://127.0.0.1:{port}";
        Channel = GrpcChannel.ForAddress(Address);
    }

    public int Port { get; }

    public string Address { get; }

    public string Log { get; }

    public GrpcChannel Channel { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>inference serve</c> with <paramref name="switches"/> on a free port, appending its output to <paramref name="log"/>.</summary>
    public static EngineProcess Start(IEnumerable<string> switches, string log)
    {
        int port = FreePort();
        var process = new Process { StartInfo = Command(["serve", "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. switches]) };
        var writer = new StreamWriter(log, append: true) { AutoFlush = true };
        var gate = new Lock();
        void Write(string? line)
        {
            if (line is not null)
            {
                lock (gate)
                {
                    writer.WriteLine(line);
                }
            }
        }
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        process.Exited += (_, _) => Write($"--- exited with {process.ExitCode}");
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new EngineProcess(process, port, log);
    }

    /// <summary>The health service's answer, or null while the process does not answer yet.</summary>
    public async Task<HealthCheckResponse.Types.ServingStatus?> HealthAsync()
    {
        try
        {
            var reply = await new Health.HealthClient(Channel).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
            return reply.Status;
        }
        catch (Grpc.Core.RpcException)
        {
            return null;
        }
    }

    /// <summary>Waits until the engine answers its health check at all (up, perhaps not yet ready).</summary>
    public Task WaitUpAsync(TimeSpan timeout) => WaitHealthAsync(status => status is not null, timeout, "to answer its health check");

    /// <summary>Waits until the engine reports SERVING (restored and replayed).</summary>
    public Task WaitReadyAsync(TimeSpan timeout) =>
        WaitHealthAsync(status => status == HealthCheckResponse.Types.ServingStatus.Serving, timeout, "to report SERVING");

    private async Task WaitHealthAsync(Func<HealthCheckResponse.Types.ServingStatus?, bool> done, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!done(await HealthAsync()))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                Assert.Fail($"The engine did not come {what} within {timeout.TotalSeconds:0} s (exited: {_process.HasExited}). Its log:\n{Tail()}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until the process has exited and its output is all in the log; false when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            // Waits for the end of the redirected output too, not only for the exit.
            await _process.WaitForExitAsync(deadline.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

        /// <summary>SIGKILL: the process dies at once, mid-whatever (a crash, an OOM kill, a lost node).</summary>
    public void Crash()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>SIGTERM: a graceful stop (final checkpoint, commits); waits for the exit and returns its code.</summary>
    public int Stop(TimeSpan timeout)
    {
        if (SendSignal(_process.Id, 15) != 0)
        {
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill();
            Assert.Fail($"The engine did not stop within {timeout.TotalSeconds:0} s of SIGTERM. Its log:\n{Tail()}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>The last lines of the log.</summary>
    public string Tail(int lines = 60)
    {
        using var stream = new FileStream(Log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var all = reader.ReadToEnd().Split('\n');
        return string.Join('\n', all.TakeLast(lines));
    }

    public void Dispose()
    {
        Channel.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    /// <summary><c>dotnet exec inference.dll</c> with <paramref name="args"/>, its output redirected.</summary>
    internal static ProcessStartInfo Command(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(HostAssembly());
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        return start;
    }

    /// <summary>A TCP port free on loopback right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs another <c>inference</c> command to its end and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) RunCommand(params string[] args)
    {
        using var process = Process.Start(Command(args))!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.GetAwaiter().GetResult());
    }

    /// <summary>The built <c>inference</c> host of the same configuration as this test build (a build dependency of the tests).</summary>
    private static string HostAssembly()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        string configuration = directory.Parent!.Name; // bin/<Configuration>/net10.0/
        string path = Path.Combine(Repository.Root, "engine", "Inference.Host", "bin", configuration, directory.Name, "inference.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build the host first: {path} is missing.", path);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
