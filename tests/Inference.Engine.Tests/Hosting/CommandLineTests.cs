namespace Inference.Engine.Tests;

/// <summary>The <c>inference</c> executable's command line, run as a user runs it.</summary>
public sealed class CommandLineTests
{
    [Fact]
    public void Help_lists_every_command_and_each_command_its_options_with_defaults()
    {
        var (code, output) = EngineProcess.RunCommand("--help");
        Assert.Equal(0, code);
        foreach (var command in new[] { "demo", "serve", "dev-kafka", "checkpoint", "model" })
        {
            Assert.Contains(command, output);
        }

        (code, output) = EngineProcess.RunCommand("serve", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--bootstrap-servers", "--role", "--port", "--checkpoints", "--features", "Inference:Section:Key" })
        {
            Assert.Contains(option, output);
        }

        (code, output) = EngineProcess.RunCommand("demo", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--rate", output);
        Assert.Contains("[default: 20000]", output);
    }

    [Theory]
    [InlineData(new[] { "demo", "--rate", "abc" }, "--rate must be a whole number between 1 and 10000000 (got 'abc')")]
    [InlineData(new[] { "demo", "--port", "70000" }, "--port must be a whole number between 0 and 65535")]
    [InlineData(new[] { "demo", "--duration", "5x" }, "--duration must be a duration such as 30s")]
    [InlineData(new[] { "scores", "verify", "--bootstrap-servers", "127.0.0.1:1", "--timeout", "abc" }, "--timeout must be a duration such as 30s")]
    [InlineData(new[] { "scores", "verify" }, "Option '--bootstrap-servers' is required")]
    [InlineData(new[] { "demo", "--no-such-option" }, "unknown option '--no-such-option' for 'inference demo' ('inference demo --help' lists them)")]
    [InlineData(new[] { "demo", "--rat", "5" }, "unknown option '--rat' for 'inference demo'; did you mean '--rate'?")]
    [InlineData(new[] { "no-such-command" }, "unknown command or argument 'no-such-command' for 'inference'")]
    [InlineData(new[] { "serve", "--embedded-kafka", "--no-such-option" }, "unknown option '--no-such-option' for 'inference serve'")]
    [InlineData(new[] { "serve", "--embeded-kafka" }, "unknown option '--embeded-kafka' for 'inference serve'; did you mean '--embedded-kafka'?")]
    [InlineData(new[] { "serve", "--Inference:Kafka:GroupId", "g", "stray" }, "unknown command or argument 'stray' for 'inference serve'")]
    public void A_bad_option_exits_2_with_a_line_naming_it(string[] args, string message)
    {
        var (code, output) = EngineProcess.RunCommand(args);
        Assert.Equal(2, code);
        Assert.Contains(message, output);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public void A_misspelled_configuration_key_given_to_serve_exits_3_naming_it_and_the_nearest_key()
    {
        var (code, output) = EngineProcess.RunCommand("serve", "--embedded-kafka", "--Inference:Featurs:Accelerator=cuda");
        Assert.Equal(3, code);
        Assert.Contains("Inference:Featurs:Accelerator is not a configuration key of the engine; did you mean Inference:Features:Accelerator?", output);
    }

    [Fact]
    public void A_bad_configuration_key_given_to_serve_exits_3_naming_it()
    {
        var (code, output) = EngineProcess.RunCommand("serve", "--embedded-kafka", "--Inference:Serving:MaxBatchRows=0");
        Assert.Equal(3, code);
        Assert.Contains("Inference:Serving:MaxBatchRows", output);
    }

    /// <summary>A start that cannot go on: the exit code, one line naming the key, no stack trace.</summary>
    private static void FailsNaming(int exitCode, string key, params string[] args)
    {
        var (code, output) = EngineProcess.RunCommand(["serve", "--embedded-kafka", "--accelerator", "Cpu", "--port", "0", .. args]);
        Assert.True(code == exitCode, $"exit {code}, expected {exitCode}: {output}");
        var lines = output.Split('\n').Where(l => l.StartsWith("inference: ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count == 1 && lines[0].Contains(key, StringComparison.Ordinal), output);
        Assert.DoesNotContain("   at ", output);
        Assert.DoesNotContain("Unhandled exception", output);
    }

    [Fact]
    public void A_start_with_the_http_port_taken_exits_3_naming_it()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        int port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        FailsNaming(3, "Inference:Serving:HttpPort", $"--Inference:Serving:HttpPort={port}");
    }

    [Fact]
    public void A_start_with_the_grpc_port_taken_exits_3_naming_it()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        int port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        FailsNaming(3, "Inference:Serving:Port", "--Inference:Serving:HttpPort=0", $"--Inference:Serving:Port={port}");
    }

    [Fact]
    public void A_worker_whose_parameter_server_does_not_answer_exits_3_naming_it()
    {
        // Nothing listens on the port just freed.
        int port = EngineProcess.FreePort();
        FailsNaming(3, "Inference:Sync:ParameterServer", "--Inference:Serving:HttpPort=0", "--role", "Worker", "--parameter-server", $"http://127.0.0.1:{port}",
            "--Inference:Sync:StartTimeoutMs=1000");
    }

    [Fact]
    public void A_checkpoint_directory_that_cannot_be_written_exits_4_naming_it()
    {
        string file = Path.GetTempFileName();
        try
        {
            FailsNaming(4, "Inference:Checkpoints:Directory", "--Inference:Serving:HttpPort=0", "--checkpoints", Path.Combine(file, "checkpoints"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
