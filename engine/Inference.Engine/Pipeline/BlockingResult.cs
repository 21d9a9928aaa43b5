using System.Runtime.ExceptionServices;

namespace Inference.Engine.Pipeline;

/// <summary>
/// A result computed on one thread (the device's, the thread pool) and waited for by a dedicated thread
/// that must block (an ingest loop, the trainer, Kafka's rebalance callback): the waiter blocks on an
/// event, never on a task, and a failure is rethrown on the waiting thread with its own stack. Reusable:
/// <see cref="Reset"/> arms it again once the last result was taken, so a steady hand-off allocates nothing.
/// </summary>
internal sealed class BlockingResult<T>
{
    private readonly ManualResetEventSlim _done;
    private T? _result;
    private ExceptionDispatchInfo? _failure;

    /// <param name="idle">True to start idle (nothing pending) so that the first use calls <see cref="Reset"/>.</param>
    public BlockingResult(bool idle = false) => _done = new ManualResetEventSlim(idle);

    /// <summary>True when nothing is pending: the last result (or failure) has been set.</summary>
    public bool IsSet => _done.IsSet;

    /// <summary>Arms it for the next result; fails when one is still pending.</summary>
    public void Reset()
    {
        if (!_done.IsSet)
        {
            throw new InvalidOperationException("A result is still pending.");
        }
        _result = default;
        _failure = null;
        _done.Reset();
    }

    public void Complete(T result)
    {
        _result = result;
        _done.Set();
    }

    public void Fail(Exception error)
    {
        _failure = ExceptionDispatchInfo.Capture(error);
        _done.Set();
    }

    /// <summary>Blocks until the result is set; returns it, or rethrows the failure (once).</summary>
    public T Wait()
    {
        _done.Wait();
        var failure = _failure;
        _failure = null;
        failure?.Throw();
        return _result!;
    }
}

/// <summary>Asynchronous work run on the thread pool and waited for by a thread that cannot await.</summary>
internal static class BlockingResult
{
    /// <summary>Runs <paramref name="work"/> on the pool and blocks the calling thread on an event until it ends; rethrows its failure.</summary>
    public static void RunOnPool(Func<Task> work)
    {
        var done = new BlockingResult<bool>();
        _ = Task.Run(async () =>
        {
            try
            {
                await work().ConfigureAwait(false);
                done.Complete(true);
            }
            catch (Exception error)
            {
                done.Fail(error);
            }
        });
        done.Wait();
    }
}
