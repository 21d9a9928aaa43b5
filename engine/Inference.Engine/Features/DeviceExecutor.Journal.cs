namespace Inference.Engine.Features;

/// <summary>The device executor's journal of applied events, for point-in-time reads of labels.</summary>
internal sealed partial class DeviceExecutor
{
    /// <summary>Point-in-time reads by replay of the journaled events (set before the executor starts, when training keeps a journal).</summary>
    public PointInTimeReplay? Replay { get; private set; }

    /// <summary>Journals the events applied from now on (<paramref name="events"/> at most) for point-in-time reads of labels.</summary>
    public void KeepJournal(int events) =>
        Replay = new PointInTimeReplay(_device, _table.Plan, new EventJournal(events, _table.Plan.NumericFields.Count, _table.Plan.KeyFields.Count));
}
