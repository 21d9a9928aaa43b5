namespace Inference.Engine.Ingest;

/// <summary>Locks host memory with the device so that uploads from it are DMA without a staging copy (the device executor on CUDA).</summary>
internal interface IPageLocker
{
    /// <summary>A lock on <paramref name="bytes"/> bytes at <paramref name="address"/>; null where the device needs none.</summary>
    IDisposable? PageLock(IntPtr address, long bytes);

    /// <summary>Releases a lock from <see cref="PageLock"/>.</summary>
    void Unlock(IDisposable? pageLock);
}
