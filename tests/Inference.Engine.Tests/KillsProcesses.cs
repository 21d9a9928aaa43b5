namespace Inference.Engine.Tests;

/// <summary>
/// Tests that SIGKILL <c>inference serve</c> processes run alone, after the parallel ones: a kill lands
/// at a random point, and a machine busy with other tests would move where that point falls.
/// </summary>
[CollectionDefinition(nameof(KillsProcesses), DisableParallelization = true)]
public sealed class KillsProcesses;
