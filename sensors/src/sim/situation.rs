//! The situations the simulated world can be in, with their stable ids and
//! real-language captions.

use serde::{Deserialize, Serialize};

/// Something happening around the rig. Every modality perceives it (see the
/// table in [`crate::sim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// Nothing happens; the device rests still.
    QuietRoom,
    /// Two people converse; the wearer sits and listens.
    PeopleTalking,
    /// A dog on a leash barks; the wearer walks it.
    DogBarking,
    /// Cars drive past; the wearer stands at the kerb.
    CarPassing,
    /// A fire burns (fireplace or campfire); the wearer sits by it.
    Fire,
    /// Rain falls; the wearer walks briskly.
    Rain,
    /// The wearer runs behind or alongside another runner.
    PersonRunning,
    /// A glass pane shatters; the wearer startles.
    GlassBreaking,
    /// A machine hums and vibrates nearby.
    MachineHumming,
    /// A door is slammed, repeatedly.
    DoorSlamming,
}

/// Number of situations.
pub(crate) const N_SITUATIONS: usize = 10;

impl Situation {
    /// Every situation, in declaration order.
    pub const ALL: [Situation; N_SITUATIONS] = [
        Situation::QuietRoom,
        Situation::PeopleTalking,
        Situation::DogBarking,
        Situation::CarPassing,
        Situation::Fire,
        Situation::Rain,
        Situation::PersonRunning,
        Situation::GlassBreaking,
        Situation::MachineHumming,
        Situation::DoorSlamming,
    ];

    /// Stable snake_case id (`"dog_barking"`), as in serde and MCAP ground truth.
    pub fn id(self) -> &'static str {
        match self {
            Situation::QuietRoom => "quiet_room",
            Situation::PeopleTalking => "people_talking",
            Situation::DogBarking => "dog_barking",
            Situation::CarPassing => "car_passing",
            Situation::Fire => "fire",
            Situation::Rain => "rain",
            Situation::PersonRunning => "person_running",
            Situation::GlassBreaking => "glass_breaking",
            Situation::MachineHumming => "machine_humming",
            Situation::DoorSlamming => "door_slamming",
        }
    }

    /// Parses [`Situation::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        Situation::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Position in [`Situation::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Real-language paraphrases describing the situation (for captions and prompts).
    pub fn captions(self) -> &'static [&'static str] {
        match self {
            Situation::QuietRoom => &[
                "a quiet room",
                "an empty, silent room",
                "a calm room where nothing is happening",
                "silence in an empty room",
                "a still and peaceful indoor space",
                "nothing going on, just quiet",
            ],
            Situation::PeopleTalking => &[
                "people talking",
                "two people having a conversation",
                "a conversation between two people",
                "friends chatting with each other",
                "the sound of people speaking",
                "a man and a woman talking",
            ],
            Situation::DogBarking => &[
                "a dog barking",
                "a barking dog in a yard",
                "the sound of a dog barking",
                "a dog barks loudly",
                "a noisy dog on a leash",
                "walking a dog that keeps barking",
            ],
            Situation::CarPassing => &[
                "a car passing by",
                "a car driving past on the street",
                "the sound of a passing car",
                "traffic going by on the road",
                "a vehicle drives past",
                "standing at the curb as cars go by",
            ],
            Situation::Fire => &[
                "a fire burning",
                "flames crackling in a fireplace",
                "a campfire at night",
                "the crackle of a wood fire",
                "burning logs with bright flames",
                "sitting by a warm fire",
            ],
            Situation::Rain => &[
                "rain falling",
                "it is raining",
                "the sound of rain",
                "a rainy day outside",
                "raindrops falling on the ground",
                "walking in heavy rain",
            ],
            Situation::PersonRunning => &[
                "a person running",
                "someone jogging",
                "a runner going by",
                "running footsteps and heavy breathing",
                "a jogger running fast",
                "going for a run",
            ],
            Situation::GlassBreaking => &[
                "glass breaking",
                "a window shattering",
                "the sound of breaking glass",
                "a glass pane smashes",
                "shattered glass falling to the floor",
                "a window breaks into pieces",
            ],
            Situation::MachineHumming => &[
                "a machine humming",
                "the hum of an electric motor",
                "a humming appliance",
                "machinery running nearby",
                "a buzzing, vibrating machine",
                "a refrigerator humming steadily",
            ],
            Situation::DoorSlamming => &[
                "a door slamming",
                "someone slams a door",
                "the bang of a door shutting",
                "a door slams shut",
                "a slamming door",
                "a door banging closed",
            ],
        }
    }

    /// Situations that plausibly happen together with this one (the second
    /// situation of an overlapping episode is drawn from here).
    pub(crate) fn partners(self) -> &'static [Situation] {
        use Situation::*;
        match self {
            QuietRoom => &[],
            PeopleTalking => &[
                MachineHumming,
                DogBarking,
                Fire,
                DoorSlamming,
                GlassBreaking,
                CarPassing,
                Rain,
            ],
            DogBarking => &[CarPassing, Rain, PeopleTalking, DoorSlamming],
            CarPassing => &[DogBarking, Rain, PeopleTalking],
            Fire => &[PeopleTalking, DogBarking],
            Rain => &[
                DogBarking,
                CarPassing,
                PersonRunning,
                PeopleTalking,
                DoorSlamming,
            ],
            PersonRunning => &[Rain, DogBarking, CarPassing],
            GlassBreaking => &[PeopleTalking, DogBarking, MachineHumming],
            MachineHumming => &[PeopleTalking, DoorSlamming, GlassBreaking],
            DoorSlamming => &[PeopleTalking, DogBarking, MachineHumming, Rain],
        }
    }

    /// Probability that an episode with this primary situation is outdoors.
    /// Never 0 or 1: the place must not give the situation away.
    pub(crate) fn p_outdoor(self) -> f32 {
        use Situation::*;
        match self {
            QuietRoom => 0.25,
            PeopleTalking => 0.4,
            DogBarking => 0.6,
            CarPassing => 0.75,
            Fire => 0.5,
            Rain => 0.7,
            PersonRunning => 0.7,
            GlassBreaking => 0.35,
            MachineHumming => 0.3,
            DoorSlamming => 0.35,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_captions_are_rich() {
        for s in Situation::ALL {
            assert_eq!(Situation::from_id(s.id()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.id())
            );
            assert!(s.captions().len() >= 5);
            assert_eq!(Situation::ALL[s.index()], s);
            for p in s.partners() {
                assert_ne!(*p, s);
                assert_ne!(*p, Situation::QuietRoom);
            }
        }
        assert_eq!(Situation::from_id("volcano"), None);
    }
}
